"""The Faust app: the pipeline built from settings, its tables, the state cache and outbox that
make a batch's effects one transaction, the views of table state, and the agents (``agents/``)."""
