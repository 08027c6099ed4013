"""The models skin-infer ships (installed as ``skin_infer.models``): each bundle folder has a model card beside it."""
