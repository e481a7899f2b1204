"""Built-in search-space families; importing this package registers them."""
from . import shufflenet, shufflenet_small_images  # noqa: F401
