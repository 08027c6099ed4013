"""The classifier bundles skin-infer ships (installed as ``skin_infer.models``); see README.md here."""
