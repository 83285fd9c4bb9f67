"""The one-machine stack behind `cmr up`: every part (broker, encoder with Triton, search, generator, ingest
worker, UI, demo seeding) is one supervised process entry - a command line plus a health check - run by
supervisord (the `supervisor` package: start order, restarts, per-part logs, stop in reverse order with the
whole process group). The stack grows by adding entries in `orchestration.stack.parts`."""

from cmr.layout import StackLayout
from orchestration.stack.parts import Part, stack_parts

__all__ = ["Part", "StackLayout", "stack_parts"]
