"""Work-arounds of Faust internals, each module naming the Faust behaviour it corrects, and
``faust_compat``, the registry of every internal they replace or rely on by name."""
