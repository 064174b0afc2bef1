"""HTTP routers, one per concern; each translates HTTP to a ``ChatService`` call."""
