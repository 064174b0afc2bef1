"""Storage backends behind one interface (``MemoryStore``), chosen explicitly by settings."""
