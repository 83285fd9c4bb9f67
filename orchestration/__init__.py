"""The orchestration on top of the platform: the `cmr` command (`orchestration.cli`) and the one-machine stack
behind `cmr up` (`orchestration.stack`). The only layer that may import everything below it - the core (cmr),
the services, the UI and the benchmarks - and nothing below imports it (docs/architecture.md)."""
