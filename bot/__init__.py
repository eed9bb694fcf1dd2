"""pesabot: take M-Pesa and Airtel Money payments in a Telegram chat through iPay Africa."""
