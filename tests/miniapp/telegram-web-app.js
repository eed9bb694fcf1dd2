// A stand-in for Telegram's telegram-web-app.js in the browser tests: like the real script, it
// reads what Telegram put in the page's address (#tgWebAppData=...&tgWebAppThemeParams=...).
"use strict";
(function () {
  const hash = new URLSearchParams(window.location.hash.slice(1));
  const theme = JSON.parse(hash.get("tgWebAppThemeParams") || "{}");
  window.Telegram = {
    WebApp: {
      initData: hash.get("tgWebAppData") || "",
      themeParams: theme,
      colorScheme: "light",
      ready: function () { window.__telegramReady = true; },
      expand: function () {},
      HapticFeedback: { notificationOccurred: function (kind) { window.__haptic = kind; } },
    },
  };
})();
