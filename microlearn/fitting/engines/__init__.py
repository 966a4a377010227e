"""Generic fitting engines by method: MIX, interior point, dictionary."""
