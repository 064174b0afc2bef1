"""phoenix-orchestrator: decides what happens next for each chat message.

A message is answered directly, or turned into a memory query or a tool run
that waits for a human's approval. Layers, outermost first:

- ``routes/``: HTTP only, translate requests to ``chat.ChatService`` calls;
- ``chat``: the round trip (plan, park for approval, execute on approval);
- ``planning/``: message -> ``actions.LLMAction`` (deterministic rules are pure);
- ``approvals/``: pending requests and their audit trail in SQLite;
- ``backends``: the only module that talks gRPC to memory and tools.
"""
