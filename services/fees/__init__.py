"""The care-fee service: what a person pays for elderly care, and what the contact center bills."""
