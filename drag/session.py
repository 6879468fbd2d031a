"""DragSession: DragGAN's optimisation, driven one step at a time.

    session = DragSession(G, w, handles=[(x, y)], targets=[(x2, y2)], mask=None, config=DragConfig())
    while not session.done:
        result = session.step()          # handles, distances, loss, done
    image = session.render()

Each step renders the features at the current latent, tracks every handle to where its
content now is, stops if every handle is within the tolerance of its target, and otherwise
takes one Adam step on the leading w vectors along the motion-supervision (+ mask) loss.
In 'fast' mode the synthesis stops after the feature block and features are read from the
small map at the few positions needed; 'reference' mode does what DragGAN's code does.
`DragConfig`'s handle options change how handles are tracked (features, a FreeDrag-style
template, or checked against the rendered image), what the motion term pulls, and when the
drag may stop (`content_check`: only when the image shows the content there; `patience`: a
'stalled' end back at the nearest step); docs/algorithms.md §2.1.
"""

import contextlib
import copy
from dataclasses import dataclass
from typing import Callable, List, Optional, Sequence, Tuple

import torch

from photodrag.errors import InvalidPointsError, InvalidSettingsError
from photodrag.io import check_points_editable

from .config import DragConfig
from .features import FeatureMap, FullResFeatures, LowResFeatures, disc
from .points import Point, check_point, check_points, prepare_mask
from .supervision import motion_loss, original_loss
from .tracking import cut_patch, grey, match_patch, patch_half, similarity, track, track_template

# A patch match this correlated (normalised cross-correlation) is taken as the content itself
IMAGE_TRUST = 0.6
CHECK_EVERY = 10    # steps between measurements of the content's progress (`DragConfig.patience`)


@dataclass(frozen=True)
class DragStep:
    """What one `DragSession.step()` saw and did."""
    step: int                           # optimisation steps taken so far (after this one)
    handles: Tuple[Point, ...]          # tracked handle positions (x, y)
    targets: Tuple[Point, ...]
    distances: Tuple[float, ...]        # |target - handle| per point, px
    loss: Optional[float]               # loss of the update this step made; None if it made none
    done: bool
    reason: Optional[str] = None        # once done: 'converged' (at the targets), 'max_steps', or 'stalled' (no nearer for `patience` steps)


@dataclass
class _Snapshot:
    step: int
    delta: torch.Tensor
    optimizer: dict
    handles: torch.Tensor
    targets: torch.Tensor
    anchors: List[Optional['_Anchor']]
    generator: int                      # which generator the drag was on (`switch_generator` counts)


@dataclass
class _Progress:
    """How near the handles' content has come (`DragConfig.patience`)."""
    nearest: torch.Tensor               # [N] each content's nearest distance to its target yet
    gained: int                         # the step any of them last got nearer
    mean: float                         # the nearest mean distance, at step `step`
    step: int
    handles: torch.Tensor               # the handles then


@dataclass
class _Anchor:
    """What a handle started on, captured at the first step after it was placed."""
    feature: torch.Tensor               # [C] the feature at the handle (DragGAN's reference)
    origin: torch.Tensor                # [2] where the handle was
    offsets: torch.Tensor               # [M, 2] the motion disc's pixels around it, relative
    disc: torch.Tensor                  # [M, C] the features there (GoodDrag's supervision)
    template: torch.Tensor              # [C] the adaptive template (FreeDrag's tracking)
    patch: Optional[torch.Tensor]       # grey image patch around it (image tracking, content check)

    def clone(self) -> '_Anchor':
        return _Anchor(self.feature, self.origin, self.offsets, self.disc, self.template.clone(), self.patch)


@contextlib.contextmanager
def _frozen_weights(G):
    """Generator weights need no gradient during a drag; restore the caller's flags after."""
    flags = [(p, p.requires_grad) for p in G.parameters()]
    for p, _ in flags:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)


class DragSession:
    """An interactive drag on generator `G` starting from latent `w`.

    w: [1, num_ws, w_dim] or [1, w_dim]. handles, targets: lists of (x, y) in generator
    pixels. mask: [R, R] in [0, 1], 1 = allowed to change (None = everything may change).
    callback(session, step_result) runs after every step.
    """

    def __init__(self, G, w: torch.Tensor, handles: Sequence, targets: Sequence, mask=None,
                 config: Optional[DragConfig] = None, callback: Optional[Callable] = None):
        self.G = G
        self.config = config = config or DragConfig()
        self.resolution = R = int(G.img_resolution)
        self.device = next(G.parameters()).device
        self.feature_resolution = G.block_resolution(config.block_index(len(G.synthesis.block_resolutions)))
        self._autocast = {'fp32': None, 'bf16': torch.bfloat16, 'fp16': torch.float16}[config.precision]
        config.check_device(self.device.type)
        self.w0 = self._check_latent(w)
        n_opt = min(config.optimized_ws, G.num_ws)
        self._n_opt = n_opt
        self._delta = torch.zeros([1, n_opt if config.latent_space == 'w+' else 1, G.w_dim],
                                  device=self.device, requires_grad=True)
        self._optimizer = torch.optim.Adam([self._delta], lr=config.lr)
        hs, ts = check_points(handles, targets, R)
        self._handles = torch.tensor(hs, dtype=torch.float32, device=self.device)
        self._targets = torch.tensor(ts, dtype=torch.float32, device=self.device)
        self._anchors: List[Optional[_Anchor]] = [None] * len(hs)
        self._start_features: Optional[FeatureMap] = None
        self._mask: Optional[torch.Tensor] = None
        self.set_mask(mask)
        self._callbacks: List[Callable] = [callback] if callback else []
        self._step = 0
        self._done = False
        self._reason: Optional[str] = None
        self._last: Optional[DragStep] = None
        self._best: Optional[_Progress] = None
        self._kept = None               # (ws, features, image so far) of the last step(preview=True)
        self._generator = 0             # generators switched to so far (`switch_generator`)
        self._cap_from = 0              # the step the `max_steps` budget counts from (the last switch)
        self._history: List[_Snapshot] = [self._snapshot()]

    # ------------------------------------------------------------------ state

    @property
    def origins(self) -> List[Optional[Point]]:
        """Where each handle's content was when the drag picked it up (None: not yet picked up)."""
        return [None if a is None else tuple(map(float, a.origin.tolist())) for a in self._anchors]

    @property
    def handles(self) -> List[Point]:
        return [tuple(map(float, p)) for p in self._handles.tolist()]

    @property
    def targets(self) -> List[Point]:
        return [tuple(map(float, p)) for p in self._targets.tolist()]

    @property
    def done(self) -> bool:
        return self._done

    @property
    def step_count(self) -> int:
        return self._step

    @property
    def latent(self) -> torch.Tensor:
        """The full latent [1, num_ws, w_dim] at the current step."""
        with torch.no_grad():
            return self._ws().detach().clone()

    @property
    def mask(self) -> Optional[torch.Tensor]:
        return self._mask

    @property
    def lr(self) -> float:
        return float(self._optimizer.param_groups[0]['lr'])

    def state(self) -> DragStep:
        """Where the drag stands now (the last step's report, or the start)."""
        return self._last or self._result(None)

    # ------------------------------------------------------------------ editing

    def add_point(self, handle, target) -> int:
        """Add a handle/target pair; its content is picked up at the next step. Returns its index."""
        h = check_point(handle, self.resolution, f'handle {len(self._anchors) + 1}')
        t = check_point(target, self.resolution, f'target {len(self._anchors) + 1}')
        check_points_editable(self._mask, [h, t], ['handle', 'target'])
        self._handles = torch.cat([self._handles, self._handles.new_tensor([h])])
        self._targets = torch.cat([self._targets, self._targets.new_tensor([t])])
        self._anchors.append(None)
        self._undone()
        return len(self._anchors) - 1

    def move_point(self, index: int, handle=None, target=None) -> None:
        """Move a handle (its content is picked up afresh there) and/or its target."""
        self._check_index(index)
        if handle is not None:
            h = check_point(handle, self.resolution, f'handle {index + 1}')
            check_points_editable(self._mask, [h], ['handle'])
            self._handles[index] = self._handles.new_tensor(h)
            self._anchors[index] = None
        if target is not None:
            t = check_point(target, self.resolution, f'target {index + 1}')
            check_points_editable(self._mask, [t], ['target'])
            self._targets[index] = self._targets.new_tensor(t)
        self._undone()

    def remove_point(self, index: int) -> None:
        self._check_index(index)
        if len(self._anchors) == 1:
            raise InvalidPointsError('cannot remove the last point: a drag needs at least one')
        keep = [i for i in range(len(self._anchors)) if i != index]
        self._handles, self._targets = self._handles[keep], self._targets[keep]
        self._anchors = [self._anchors[i] for i in keep]
        self._undone()

    def set_mask(self, mask) -> None:
        """Replace the mask (1 = may change); tracking state is kept."""
        m = prepare_mask(mask, self.resolution, self.device)
        check_points_editable(m, self.handles + self.targets,
                             [f'handle {i + 1}' for i in range(len(self._handles))]
                             + [f'target {i + 1}' for i in range(len(self._targets))])
        self._mask = m
        self._keep = None if m is None else 1 - m

    def set_lr(self, lr: float) -> None:
        """Change the learning rate; Adam's moment estimates are kept."""
        if not lr > 0:
            raise InvalidSettingsError(f'lr must be a positive number, got {lr!r}')
        for group in self._optimizer.param_groups:
            group['lr'] = float(lr)

    def undo(self, steps: int = 1, *, to_step: Optional[int] = None) -> DragStep:
        """Go back `steps` optimisation steps (or to step `to_step`): the exact latent,
        handles, points and optimiser state of then. Returns the restored state."""
        target = self._step - steps if to_step is None else to_step
        if not 0 <= target <= self._step:
            raise InvalidSettingsError(f'can undo to steps 0..{self._step}, not {target}')
        self._restore(target)
        self._undone()      # snapshots are taken at the start and after updates: never done
        self._last = self._result(None)
        return self._last

    def _restore(self, target: int) -> None:
        snap = self._history[target]
        del self._history[target + 1:]
        with torch.no_grad():
            self._delta.copy_(snap.delta)
        self._optimizer.load_state_dict(copy.deepcopy(snap.optimizer))
        self._handles, self._targets = snap.handles.clone(), snap.targets.clone()
        self._anchors = [None if a is None else a.clone() for a in snap.anchors]
        self._step = snap.step
        if snap.generator != self._generator:   # its anchors were read on the generator before
            self._reanchor()

    def switch_generator(self, G, w: torch.Tensor) -> DragStep:
        """Go on with the drag on generator `G` from its latent `w` (a progressive start: the drag
        began on the inversion's start and its tuned generator is now there).

        The edit made so far is kept as what it is in W: the offset from the start latent, with
        Adam's state, moves to `w`, so the new start latent plus the same offset is where the drag
        goes on. Handles stay where they were tracked to and the targets where they are; what the
        drag compares with is read again on `G` at `w`, as if it had started there: each handle's
        feature, motion disc, template and image patch at its origin, and the keep-still term's
        start features. A drag that had ended is open again: the content has to be at the
        targets on `G`, and `max_steps` counts afresh from here. Earlier steps can still be
        undone, on `G`. The whole switch is one
        deterministic call, so a script that records it (`pipeline.script`) replays bit for bit.
        Raises InvalidSettingsError for a generator of another layout or device."""
        if (int(G.img_resolution) != self.resolution or G.num_ws != self.G.num_ws or G.w_dim != self.G.w_dim
                or G.block_resolution(self.config.block_index(len(G.synthesis.block_resolutions)))
                != self.feature_resolution):
            raise InvalidSettingsError('the drag can only go on on a generator of the same layout (resolution, '
                                       'number and size of its w vectors, feature block)')
        device = next(G.parameters()).device
        if device != self.device:
            raise InvalidSettingsError(f'the new generator is on {device}, the drag on {self.device}')
        self.G = G
        self.w0 = self._check_latent(w)
        self._generator += 1
        self._cap_from = self._step         # the drag gets its whole step budget on `G`
        self._reanchor()                    # steps undone to later are read again on `G` too (`_restore`)
        self._undone()
        self._last = self._result(None)
        return self._last

    def _reanchor(self) -> None:
        """Read what the drag compares with again on the current generator, at its start latent
        (the offset taken out): the keep-still term's start features, and every placed handle's
        anchor at its origin (feature, motion disc, template, image patch), as if the drag had
        started on this generator."""
        needs_image = any(a is not None and a.patch is not None for a in self._anchors)
        with torch.no_grad(), _frozen_weights(self.G):
            saved = self._delta.detach().clone()
            self._delta.zero_()
            try:
                features = self._features(needs_image)
                image = self._image_now() if needs_image else None
            finally:
                self._delta.copy_(saved)
                self._kept = None
            self._start_features = features.detach()
            image_grey = None if image is None else grey(image)
            half = patch_half(self.resolution)
            for i, a in enumerate(self._anchors):
                if a is None:
                    continue
                feature = features.at(a.origin[None])[0].detach().clone()
                self._anchors[i] = _Anchor(
                    feature=feature, origin=a.origin, offsets=a.offsets,
                    disc=features.at(a.origin[None] + a.offsets).detach().clone(), template=feature.clone(),
                    patch=None if a.patch is None or image_grey is None else cut_patch(image_grey, a.origin, half))

    # ------------------------------------------------------------------ the algorithm

    def step(self, preview: bool = False) -> DragStep:
        """Track the handles at the current latent and, unless done, take one Adam step.

        preview: also keep what the step's forward pass computed so that `preview()` can give
        the image at the latent the handles were tracked on for the cost of the blocks above
        the feature block (an interactive editor's frames); the step itself is unchanged."""
        if self._done:
            return self._last
        config = self.config
        with torch.enable_grad(), _frozen_weights(self.G):
            # the image: every step to track or check by it; for `patience`, when a handle's start
            # patch is to be cut and on the steps its progress is measured
            image_needed = (config.choice('tracking') == 'image' or config.choice('content_check')
                            or (config.choice('patience') > 0 and (self._step % CHECK_EVERY == 0
                                                                  or any(a is None for a in self._anchors))))
            features = self._features(preview or image_needed)
            image = self._image_now() if image_needed else None
            self._capture(features, image)
            self._handles = self._track(features, image)
            distances = (self._targets - self._handles).norm(dim=1)
            loss_value = None
            arrived = bool((distances <= config.stop_px(self.resolution)).all())
            if arrived and config.choice('content_check'):
                arrived = self._content_arrived(image)
            stalled = self._note_progress(distances, image)
            if arrived:
                self._done, self._reason = True, 'converged'
            elif self._step - self._cap_from >= config.max_steps or stalled:
                self._end_at_best('stalled' if stalled else 'max_steps')
            else:
                r1 = config.motion_radius(self.resolution)
                if config.choice('supervision') == 'original':
                    loss = original_loss(features, self._handles, self._targets, self._anchors, r1)
                else:
                    loss = motion_loss(features, self._handles, self._targets, r1)
                if self._keep is not None and self.config.lambda_mask > 0:
                    loss = loss + self.config.lambda_mask * features.masked_l1(self._start_features, self._keep)
                self._optimizer.zero_grad(set_to_none=True)
                loss.backward()
                self._optimizer.step()
                self._step += 1
                loss_value = float(loss.detach())
                self._history.append(self._snapshot())
        self._last = self._result(loss_value)
        for fn in self._callbacks:
            fn(self, self._last)
        return self._last

    def run(self, max_steps: Optional[int] = None, callback: Optional[Callable] = None) -> DragStep:
        """Step until done (or for at most `max_steps` more optimisation steps)."""
        stop_at = None if max_steps is None else self._step + max_steps
        result = self.state()
        while not self._done and (stop_at is None or self._step < stop_at):
            result = self.step()
            if callback:
                callback(self, result)
        return result

    @torch.no_grad()
    def preview(self, precision: Optional[str] = None) -> Optional[torch.Tensor]:
        """The image [1, C, R, R] in [-1, 1] at the latent the last `step(preview=True)` tracked
        the handles on (before its update), or None if the last step kept no preview.
        precision: of the blocks still to run ('fp32', 'bf16', 'fp16'; None = the drag's):
        a frame to look at can be cheaper than the drag."""
        kept, self._kept = self._kept, None
        if kept is None:
            return None
        ws, x, img = kept
        if x is None:                   # reference mode: the step rendered the whole image
            return img
        autocast = self._autocast if precision is None else \
            {'fp32': None, 'bf16': torch.bfloat16, 'fp16': torch.float16}[precision]
        # the generator's own choice of modulated convolution: 7.5 ms for the demo's last block
        # on 2 CPU cores (6.4 ms in bf16), against 13.7 ms with the drag's unfused one
        return self.G.synthesis.finish(ws, x, img, self.feature_resolution, noise_mode=self.config.noise_mode,
                                       autocast=autocast)

    def trajectory(self):
        """(step, latent [1, num_ws, w_dim], handles, targets) for every step from the start to
        now (undone steps are gone): what a video of the drag shows."""
        for snap in self._history:
            ws = torch.cat([self.w0[:, :self._n_opt] + snap.delta, self.w0[:, self._n_opt:]], dim=1)
            yield (snap.step, ws, [tuple(map(float, p)) for p in snap.handles.tolist()],
                   [tuple(map(float, p)) for p in snap.targets.tolist()])

    @torch.no_grad()
    def render(self, noise_mode: Optional[str] = None, start: bool = False) -> torch.Tensor:
        """The full image [1, C, R, R] in [-1, 1] at the current latent (start: at the start
        latent, on the current generator: what the drag has changed is measured against it)."""
        return self.G.synthesis(self.w0 if start else self._ws(), noise_mode=noise_mode or self.config.noise_mode,
                                autocast=self._autocast)

    # ------------------------------------------------------------------ internals

    def _check_latent(self, w: torch.Tensor) -> torch.Tensor:
        G = self.G
        if not isinstance(w, torch.Tensor):
            raise InvalidSettingsError('w must be a tensor [1, num_ws, w_dim] or [1, w_dim]')
        w = w.detach().to(self.device, torch.float32)
        if w.ndim == 2 and w.shape == (1, G.w_dim):
            w = w[:, None].repeat(1, G.num_ws, 1)
        if w.ndim != 3 or w.shape != (1, G.num_ws, G.w_dim):
            raise InvalidSettingsError(f'w must be [1, {G.num_ws}, {G.w_dim}] or [1, {G.w_dim}], got {tuple(w.shape)}')
        if not bool(torch.isfinite(w).all()):
            raise InvalidSettingsError('w contains NaN or infinite values')
        return w.clone()

    def _ws(self) -> torch.Tensor:
        moved = self.w0[:, :self._n_opt] + self._delta
        return torch.cat([moved, self.w0[:, self._n_opt:]], dim=1)

    def _features(self, preview: bool = False) -> FeatureMap:
        res = self.feature_resolution
        ws = self._ws()
        if self.config.mode == 'fast':
            # Stop after the feature block; scale activations rather than weights so the
            # backward pass needs no weight gradients. ToRGB runs only for a preview: the
            # features, and so the step, are the same either way.
            out = self.G.synthesis.features(ws, stop_after=res, noise_mode=self.config.noise_mode,
                                            fused_modconv=False, autocast=self._autocast, collect=[res],
                                            return_image=preview)
            # (StyleGAN3 has no image before its last layer: `finish` makes it from the features)
            self._kept = (ws.detach(), out.features[res].detach(),
                          None if out.image is None else out.image.detach()) if preview else None
            return LowResFeatures(self.G.synthesis.image_area(out.features[res], res).float(), self.resolution)
        out = self.G.synthesis.features(ws, return_image=True, noise_mode=self.config.noise_mode,
                                        fused_modconv=True, autocast=self._autocast, collect=[res])
        self._kept = (None, None, out.image.detach()) if preview else None
        return FullResFeatures(self.G.synthesis.image_area(out.features[res], res).float(), self.resolution)

    def _capture(self, features: FeatureMap, image: Optional[torch.Tensor]) -> None:
        """Anchors for handles that have none yet (what they start on), and the start features."""
        if self._start_features is None:
            self._start_features = features.detach()
        missing = [i for i, a in enumerate(self._anchors) if a is None]
        if not missing:
            return
        r1 = self.config.motion_radius(self.resolution)
        half = patch_half(self.resolution)
        image_grey = None if image is None else grey(image)
        with torch.no_grad():
            for i in missing:
                origin = self._handles[i].round()
                pixels = disc(origin, r1, self.resolution)
                feature = features.at(origin[None])[0].detach().clone()
                patch = None if image_grey is None else cut_patch(image_grey, origin, half)
                self._anchors[i] = _Anchor(feature=feature, origin=origin.clone(), offsets=pixels - origin[None],
                                           disc=features.at(pixels).detach().clone(), template=feature.clone(),
                                           patch=patch)

    def _track(self, features: FeatureMap, image: Optional[torch.Tensor]) -> torch.Tensor:
        """Every handle's new position by the configured tracker (docs/algorithms.md §2.1)."""
        config, R = self.config, self.resolution
        radius = config.search_radius(R)
        anchors = self._anchors
        references = torch.stack([a.feature for a in anchors])
        if config.choice('tracking') == 'template':
            found, templates = track_template(
                features, self._handles, torch.stack([a.origin for a in anchors]), self._targets,
                torch.stack([a.template for a in anchors]), references, radius,
                rate=config.template_rate, bound=config.template_bound)
            for a, t in zip(anchors, templates):
                a.template = t
        else:
            found = track(features, self._handles, references, radius)
        confidence = config.choice('confidence')
        if confidence > 0:
            trusted = similarity(features, found, references) >= confidence
            found = torch.where(trusted[:, None], found, self._handles)
        if config.choice('tracking') == 'image' and image is not None:
            image_grey = grey(image)
            for i, a in enumerate(anchors):
                if a.patch is None:
                    continue
                lo = torch.minimum(found[i], self._handles[i]) - radius
                hi = torch.maximum(found[i], self._handles[i]) + radius
                at, score = match_patch(image_grey, a.patch, lo, hi, at=found[i])
                if at is not None and score >= IMAGE_TRUST:
                    found[i] = at.to(found.dtype)
        return found

    def _content(self, image: torch.Tensor) -> List[Optional[torch.Tensor]]:
        """Where the rendered image shows each handle's content (its start patch found again by
        correlation anywhere within the drag's reach: half its length + 2 px around the segment
        from where it started to its target), or None where the image cannot tell. A generator
        often redraws rather than slides (a mouth corner fades at the handle and forms at the
        target), so the search spans the whole way, not a window around the last position."""
        image_grey = grey(image)
        out: List[Optional[torch.Tensor]] = []
        for i, a in enumerate(self._anchors):
            if a is None or a.patch is None:
                out.append(None)
                continue
            reach = 0.5 * float((self._targets[i] - a.origin).norm()) + 2.0
            lo = torch.minimum(a.origin, self._targets[i]) - reach
            hi = torch.maximum(a.origin, self._targets[i]) + reach
            at, score = match_patch(image_grey, a.patch, lo, hi)
            out.append(at.to(self._handles.dtype) if at is not None and score >= IMAGE_TRUST else None)
        return out

    def _content_arrived(self, image: Optional[torch.Tensor]) -> bool:
        """Whether the rendered image shows every handle's content at its target; a handle whose
        content the image finds elsewhere is moved to it, so the drag goes on from where the
        content really is."""
        if image is None:
            return True
        stop = self.config.stop_px(self.resolution)
        arrived = True
        for i, at in enumerate(self._content(image)):
            if at is not None and float((at - self._targets[i]).norm()) > stop:
                self._handles[i] = at
                arrived = False
        return arrived

    def _note_progress(self, distances: torch.Tensor, image: Optional[torch.Tensor]) -> bool:
        """Every CHECK_EVERY steps, how near each handle's content is to its target (in the image
        where it can tell, else the tracker's distance): remembers the step where they were
        nearest on average, and returns True when `patience` steps went by in which no handle's
        content got nearer than it had been by half the stop distance."""
        patience = self.config.choice('patience')
        if not patience or self._step % CHECK_EVERY or image is None:
            return False
        d = distances.clone()
        for i, at in enumerate(self._content(image)):
            if at is not None:
                d[i] = (at - self._targets[i]).norm()
        gain = 0.5 * self.config.stop_px(self.resolution)
        mean = float(d.mean())
        if self._best is None:
            self._best = _Progress(nearest=d, gained=self._step, mean=mean, step=self._step,
                                   handles=self._handles.clone())
        else:
            if bool((d < self._best.nearest - gain).any()):
                self._best.nearest, self._best.gained = torch.minimum(d, self._best.nearest), self._step
            if mean < self._best.mean:
                self._best.mean, self._best.step, self._best.handles = mean, self._step, self._handles.clone()
        return self._step - self._best.gained >= patience

    def _end_at_best(self, reason: str) -> None:
        """Done: with `patience`, back at the step where the content was nearest the targets on
        average (pushing on past it changes the face without bringing the content)."""
        best = self._best
        if self.config.choice('patience') and best is not None and best.step < self._step:
            self._restore(best.step)
            self._handles = best.handles.clone()
            self._kept = None
        self._done, self._reason = True, reason

    @torch.no_grad()
    def _image_now(self) -> Optional[torch.Tensor]:
        """The image at the latent the features were just computed at (kept for `preview`)."""
        if self._kept is None:
            return None
        ws, x, img = self._kept
        if x is not None:
            img = self.G.synthesis.finish(ws, x, img, self.feature_resolution, noise_mode=self.config.noise_mode,
                                          autocast=self._autocast)
            self._kept = (None, None, img)
        return img.float()

    def _snapshot(self) -> _Snapshot:
        return _Snapshot(self._step, self._delta.detach().clone(), copy.deepcopy(self._optimizer.state_dict()),
                         self._handles.clone(), self._targets.clone(),
                         [None if a is None else a.clone() for a in self._anchors], self._generator)

    def _result(self, loss: Optional[float]) -> DragStep:
        distances = (self._targets - self._handles).norm(dim=1).tolist()
        return DragStep(step=self._step, handles=tuple(self.handles), targets=tuple(self.targets),
                        distances=tuple(float(d) for d in distances), loss=loss, done=self._done, reason=self._reason)

    def _check_index(self, index: int) -> None:
        if not 0 <= index < len(self._anchors):
            raise InvalidPointsError(f'there is no point {index}; points are 0..{len(self._anchors) - 1}')

    def _undone(self) -> None:
        self._done, self._reason = False, None
        self._best = None           # points or steps changed: progress is measured afresh
