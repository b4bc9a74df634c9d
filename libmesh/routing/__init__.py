"""Routing: the neutral call model, compiled snapshots and the decisions they make."""
