"""The live 1m stream: WebSocket → Kafka → MongoDB, with heartbeats and gap repair.

Modules: ``messages`` (the versioned envelope), ``kafka`` (client configs, topics, lag),
``producer``, ``consumer``, ``heartbeat``, ``repair``.
"""
