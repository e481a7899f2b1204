"""Built-in search-space families; importing this package registers them."""
from . import shufflenet  # noqa: F401
