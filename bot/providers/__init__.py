"""Payment providers: one folder per outside payment system (`ipay/`)."""
