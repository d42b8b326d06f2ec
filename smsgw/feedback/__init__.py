"""Feedback: cardholder replies to alerts, classification and fraud webhooks."""
