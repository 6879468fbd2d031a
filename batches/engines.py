"""Where a batch's photos are edited: 'local' (this process, one photo after another, the
generator loaded once) or 'ray' (Ray actors, each with the generator loaded once and a GPU
when the cluster has them). Both yield (position, Item) as photos finish and give the same
files; the driver (`run.batch`) writes the manifest.

A job is (position, photo path, photo relative to the recipe, output path).
"""

import os
from pathlib import Path
from typing import Iterator, Optional, Sequence, Tuple

from photodrag.errors import PhotodragError

from .items import Item, Progress, run_item
from .recipe import Recipe

ENGINES = ('local', 'ray')

Job = Tuple[int, str, str, str]


def local_items(recipe: Recipe, config, todo: Sequence[Job], points, cache, detector,
                progress: Optional[Progress] = None) -> Iterator[Tuple[int, Item]]:
    """The photos edited in this process, in order; `progress` gets each edit's stages."""
    for n, photo, rel, out in todo:
        yield n, run_item(recipe, config, Path(photo), rel, Path(out), points, cache, detector, progress)


class RayWorker:
    """A Ray actor: the generator loaded once, photos taken from the driver's queue. Torch uses
    as many threads as in the driver, so its numbers, and the files, are the local engine's."""

    def __init__(self, recipe, points, cache, threads):
        import torch
        torch.set_num_threads(threads)
        self.recipe, self.points, self.cache = recipe, points, cache
        self.config = recipe.edit_config()      # 'auto' picks the GPU Ray gave this actor, if any

    def run(self, n, photo, rel, out):
        return n, run_item(self.recipe, self.config, Path(photo), rel, Path(out), self.points, self.cache, None)


def ray_items(recipe: Recipe, todo: Sequence[Job], points, cache, address: Optional[str],
              workers: Optional[int]) -> Iterator[Tuple[int, Item]]:
    """(position, Item) as Ray's actors finish them (no per-stage progress: the edits run in
    other processes)."""
    if not todo:
        return
    try:
        import ray
        from ray.util import ActorPool
    except ImportError:
        raise PhotodragError('the ray engine needs Ray: pip install "photodrag[ray]"') from None
    import torch
    started = False
    if not ray.is_initialized():
        kwargs = dict(include_dashboard=False, log_to_driver=False, configure_logging=False)
        if address:
            ray.init(address=address, **kwargs)
        else:
            ray.init(num_cpus=os.cpu_count() or 1, **kwargs)
        started = True
    try:
        resources = ray.cluster_resources()
        gpus, cpus = int(resources.get('GPU', 0)), int(resources.get('CPU', 1))
        threads = torch.get_num_threads()
        if gpus:
            count = workers or gpus
            options = {'num_gpus': 1, 'num_cpus': 1}
        else:
            count = workers or max(1, cpus // max(threads, 1))
            options = {'num_cpus': max(1, min(threads, cpus // max(count, 1)))}
        actor = ray.remote(**options)(RayWorker)
        pool = ActorPool([actor.remote(recipe, points, cache, threads) for _ in range(min(count, len(todo)))])
        for n, item in pool.map_unordered(lambda a, job: a.run.remote(*job), todo):
            yield n, item
    finally:
        if started:
            ray.shutdown()


__all__ = ['ENGINES', 'Job', 'local_items', 'ray_items', 'RayWorker']
