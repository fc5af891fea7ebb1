"""Call-floor automations: windows kept per DID / campaign / route / agent, each recipe's evaluation
(pure, one module per recipe), the alerts they raise and the actions those run.

Nothing here touches the store or the network: :mod:`connector.automations.service` wires the
engine to the store writer, the outbox and the alert sinks.
"""
