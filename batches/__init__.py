"""Batches: one recipe over many photos, resumable, nothing lost and nothing done twice.

    import photodrag
    result = photodrag.batch('retouch.yaml')              # or a dict, or a Recipe
    result = photodrag.batch('retouch.yaml', resume=True) # after a crash, a kill or Ctrl-C
    plan = photodrag.batch('retouch.yaml', dry_run=True)  # photos, faces found, edits; nothing inverted

The room above the edit chain for many photos: the recipe and its checks (`recipe`,
docs/batch.md), one photo's edit (`items`), where photos are edited (`engines`: this process
or Ray actors), and the run with its manifest, lock and resume (`run`). It calls
`photodrag.pipeline.edit` once a photo.
"""

from .recipe import Recipe, RecipeError, load_recipe
from .run import BatchLock, BatchResult, batch

__all__ = ['batch', 'load_recipe', 'Recipe', 'RecipeError', 'BatchResult', 'BatchLock']
