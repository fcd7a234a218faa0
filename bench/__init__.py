"""vidgate's benchmark harness: vidgate side by side with LiteLLM and nginx, in one run.

`bench/run` (or `python -m bench`) is the one command; `bench/README.md` says what it does.
"""
