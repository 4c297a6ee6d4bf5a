"""Faust agents: thin loops that decode, call the pure rules and send what they decide."""
