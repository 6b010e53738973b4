"""Cheap-first routing: permission-scoped caches, tier choice, budgets, clarification."""
