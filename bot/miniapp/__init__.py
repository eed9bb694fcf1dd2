"""The Telegram Mini App: the counter screen for staff and the back office for admins, served
by the bot's one ASGI app under `/app/` (`bot.miniapp.web`), every request signed by Telegram
(`bot.miniapp.auth`)."""
