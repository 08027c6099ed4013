"""Errors the runtime raises; every message names the file and says what to do."""


class SkinInferError(Exception):
    """Base class: a problem a user can act on (the message says how)."""


class BundleError(SkinInferError):
    """A model bundle is missing, damaged, or disagrees with its graph."""


class ImageError(SkinInferError):
    """An input image cannot be analysed."""


class DeviceError(SkinInferError):
    """A requested execution provider cannot be honoured."""
