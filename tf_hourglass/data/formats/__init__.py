"""Dataset formats, one module each, behind ``data/readers.py`` (``read_dataset``, ``FORMATS``)."""
