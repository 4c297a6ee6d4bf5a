"""distill-streams: scored LLM agent runs in, clean training datasets out, on Kafka.

Each package is a layer; a module imports from its own package and the ones below it only
(tests/unit/test_layers.py):

    cli/          the ``distill`` command line
    commands/     the operator commands: ingest, follow, export, stats, wait, demo, worker, ...
    faust_app/    the Faust app built from settings, its tables and agents, the state they share
    faust_fixes/  work-arounds of Faust internals, and faust_compat, the registry of them
    broker/       Kafka plumbing: topic specs, aiokafka clients, the connection check, the local broker
    rules/        the pure rules (firewall, join, pairing, quarantine): no Faust, no Kafka

settings.py and errors.py are used by every layer; the models are in the ``schemas`` package.
"""
