"""The package version, apart from the package root so that modules below it need not import it."""

__version__ = "0.1.0"
