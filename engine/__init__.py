"""mesbridge: a declarative integration engine between Next Plus MES and ERPs."""

__version__ = "0.1.0"
__all__ = ["__version__"]
