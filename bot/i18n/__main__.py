"""`python -m bot.i18n`: re-extract the msgids into the `.po` files and check them."""

from bot.i18n import main

raise SystemExit(main())
