"""Photo I/O, face/object detection, crop recipes, CropTransform and paste-back.

    from photodrag import alignment
    photo = alignment.read_photo('group.jpg')
    faces = alignment.detect_faces(photo)                       # left to right
    people = alignment.detect_people(photo, faces)              # their whole bodies (full-body recipe)
    crop = alignment.align(photo, faces[0], size=512)           # FFHQ recipe
    ...                                                         # invert + drag crop.image
    result = alignment.paste_back(photo, [(crop, edited)])
    alignment.write_photo(result.pixels, 'group_edited.jpg', like=photo)
"""

from .faces import (DEFAULT_DETECTOR, MIN_EYE_CONTRAST, WEAK_SCORE, DlibDetector, Face, FaceDetector, default_detector,
                    detect_faces, named_detector,
                    eye_contrast, is_weak, no_face_error, select_face,
                    sort_faces)
from .retinaface import RetinaFaceDetector
from .people import detect_people, select_person
from .paste import BlendMask, Edit, PasteConfig, PasteResult, paste_back
from .photo import DEFAULT_MAX_PIXELS, Photo, as_rgb, estimate_jpeg_quality, read_photo, write_photo
from .recipes import (RECIPES, AlignedCrop, CropRecipe, align, box_quad, ffhq_quad, recipe_for, recipe_for_checkpoint,
                      recipe_from_metadata, warp_quad)
from .transform import CropTransform, homography

__all__ = [
    'Photo', 'read_photo', 'write_photo', 'as_rgb', 'estimate_jpeg_quality', 'DEFAULT_MAX_PIXELS',
    'Face', 'FaceDetector', 'DlibDetector', 'RetinaFaceDetector', 'default_detector', 'named_detector',
    'DEFAULT_DETECTOR', 'detect_faces', 'select_face', 'sort_faces',
    'no_face_error', 'eye_contrast', 'is_weak', 'WEAK_SCORE', 'MIN_EYE_CONTRAST',
    'CropTransform', 'homography',
    'AlignedCrop', 'CropRecipe', 'RECIPES', 'align', 'ffhq_quad', 'box_quad', 'recipe_for', 'recipe_for_checkpoint',
    'recipe_from_metadata', 'warp_quad',
    'detect_people', 'select_person',
    'PasteConfig', 'Edit', 'BlendMask', 'PasteResult', 'paste_back',
]
