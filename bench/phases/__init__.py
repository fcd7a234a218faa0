"""One module per measured phase: api, downloads, engine (footprint is gathered by the runner)."""
