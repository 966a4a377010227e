"""Generic fitting engines by method: MIX, interior point, dictionary, and the posterior
mean over prior samples (orientation-free models such as SANDI)."""
