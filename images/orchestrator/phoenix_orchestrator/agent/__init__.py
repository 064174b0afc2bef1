"""The bounded agent loop: a user message, then planner steps until an answer, a pause for a
human, or the twin's step limit (``loop``); each turn's steps are kept durably (``turns``)."""
