"""`mesbridge run`: the service serving webhooks, queue workers and pollers for a config root."""
