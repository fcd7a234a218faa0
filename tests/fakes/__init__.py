"""Fake upstreams for the three protocols of spec/upstreams.md, served over real HTTP on
127.0.0.1 with switchable faults. Written from the spec, not from vidgate's backends."""
