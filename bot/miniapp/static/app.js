// The Mini App's one script: Telegram's initData on every call (Authorization: tma ...), the
// screen fetched as server-rendered HTML, the order polled every 2 s until it is settled.
"use strict";
(function () {
  const tg = window.Telegram && window.Telegram.WebApp;
  const initData = tg ? tg.initData : "";
  const screen = document.getElementById("screen");
  const POLL_MS = 2000;
  let formKey = null; // one idempotency key per filled-in form: a double tap sends one prompt
  let polling = null;

  function theme() {
    const params = (tg && tg.themeParams) || {};
    for (const [name, value] of Object.entries(params)) {
      document.documentElement.style.setProperty("--tg-" + name.replace(/_/g, "-"), value);
    }
  }

  function call(path, options) {
    const opts = options || {};
    const headers = Object.assign({ Authorization: "tma " + initData }, opts.headers || {});
    return fetch(path, Object.assign({}, opts, { headers: headers }));
  }

  function newKey() {
    return (crypto.randomUUID ? crypto.randomUUID() : String(Date.now()) + "-" + Math.random().toString(16).slice(2));
  }

  function byId(id) { return document.getElementById(id); }

  function showProblem(text) {
    const el = byId("problem");
    if (!el) return;
    el.textContent = text || "";
    el.hidden = !text;
  }

  function renderOrder(order) {
    const box = byId("current");
    const list = byId("orders");
    box.hidden = false;
    box.dataset.status = order.status;
    box.dataset.id = order.id;
    box.textContent = "";
    const head = document.createElement("strong");
    head.textContent = "KES " + order.amount + " · " + order.phone + " · " + order.network;
    const state = document.createElement("div");
    state.className = "state";
    state.textContent = order.status_text;
    box.append(head, state);
    if (order.receipt_code) {
      const receipt = document.createElement("div");
      receipt.className = "receipt";
      receipt.textContent = list.dataset.receipt + ": " + order.receipt_code + " · " + list.dataset.payer + ": " + (order.payer_name || "");
      box.append(receipt);
    }
    if (order.final && order.reason) {
      const reason = document.createElement("div");
      reason.className = "muted";
      reason.textContent = order.reason;
      box.append(reason);
    }
    if (order.final && !order.paid) {
      // the retry: a new prompt (a new order) for the same form
      const again = document.createElement("button");
      again.type = "button";
      again.id = "again";
      again.textContent = box.dataset.again;
      again.addEventListener("click", function (event) { formKey = null; sendPrompt(event); });
      box.append(again);
    }
  }

  function renderList(orders) {
    const list = byId("orders");
    list.textContent = "";
    if (!orders.length) {
      const li = document.createElement("li");
      li.className = "muted";
      li.textContent = list.dataset.none;
      list.append(li);
    }
    for (const order of orders) {
      const li = document.createElement("li");
      li.dataset.id = order.id;
      const left = document.createElement("span");
      left.textContent = order.amount + " · " + order.phone;
      const right = document.createElement("span");
      right.textContent = order.status_text;
      li.append(left, right);
      if (order.refund) {
        const refundState = document.createElement("span");
        refundState.className = "muted";
        refundState.textContent = order.refund;
        li.append(refundState);
      }
      if (order.can_refund) li.append(refundButton(list, order));
      const answer = document.createElement("span");
      answer.className = "refund-answer muted";
      li.append(answer);
      list.append(li);
    }
  }

  // A cashier's button asks the admins; an admin's is their own refund, with its confirming tap.
  function refundButton(list, order) {
    const button = document.createElement("button");
    button.type = "button";
    button.dataset.order = order.id;
    if (list.dataset.admin) {
      button.className = "secondary refund";
      button.dataset.confirm = order.confirm;
      button.textContent = list.dataset.refund;
      button.addEventListener("click", refund);
    } else {
      button.className = "secondary ask";
      button.textContent = list.dataset.ask;
      button.addEventListener("click", askRefund);
    }
    return button;
  }

  async function refreshList() {
    const response = await call("/app/api/payments");
    if (response.ok) renderList((await response.json()).orders);
  }

  function watch(orderId) {
    if (polling) clearInterval(polling);
    polling = setInterval(async function () {
      const response = await call("/app/api/payments/" + encodeURIComponent(orderId));
      if (!response.ok) return;
      const order = await response.json();
      renderOrder(order);
      if (order.final) {
        clearInterval(polling);
        polling = null;
        if (tg && tg.HapticFeedback) tg.HapticFeedback.notificationOccurred(order.paid ? "success" : "error");
        refreshList();
      }
    }, POLL_MS);
  }

  function fields() {
    return {
      phone: byId("phone").value,
      network: byId("network").value,
      amount: byId("amount").value,
      note: byId("note").value,
    };
  }

  async function sendPrompt(event) {
    event.preventDefault();
    showProblem("");
    if (!formKey) formKey = newKey();
    const response = await call("/app/api/payments", {
      method: "POST",
      headers: { "Content-Type": "application/json", "Idempotency-Key": formKey },
      body: JSON.stringify(fields()),
    });
    const body = await response.json();
    if (!response.ok) {
      showProblem(body.error && body.error.message);
      if (response.status !== 429) formKey = null;
      return;
    }
    renderOrder(body);
    refreshList();
    if (!body.final) watch(body.id);
  }

  async function requestLink() {
    showProblem("");
    const response = await call("/app/api/requests", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ amount: byId("amount").value, note: byId("note").value }),
    });
    const body = await response.json();
    if (!response.ok) { showProblem(body.error && body.error.message); return; }
    byId("qr").src = body.qr;
    const link = byId("link-url");
    link.href = body.link;
    link.textContent = body.link;
    byId("link").hidden = false;
  }

  async function guessNetwork() {
    const phone = byId("phone").value;
    if (!phone) return;
    const response = await call("/app/api/network?phone=" + encodeURIComponent(phone));
    if (!response.ok) return;
    const body = await response.json();
    if (body.network) byId("network").value = body.network;
  }

  async function loadChart() {
    const img = byId("chart");
    if (!img) return;
    const response = await call("/app/api/chart");
    if (!response.ok) return;
    img.src = (await response.json()).png;
    img.hidden = false;
  }

  // A refund takes two taps: the first turns the button into "Refund KES ...", the second sends it.
  async function refund(event) {
    const button = event.target;
    if (!button.dataset.armed) {
      button.dataset.armed = "1";
      button.textContent = button.dataset.confirm;
      return;
    }
    button.disabled = true;
    const response = await call("/app/api/refunds/" + encodeURIComponent(button.dataset.order), { method: "POST" });
    const body = await response.json();
    const answer = button.parentElement.querySelector(".refund-answer");
    answer.textContent = response.ok ? body.message : (body.error && body.error.message) || "";
    button.hidden = true;
  }

  // One POST for a refund button, its answer shown beside it; the button goes.
  async function refundStep(button, path) {
    button.disabled = true;
    const response = await call(path, { method: "POST" });
    const body = await response.json();
    const item = button.closest("li");
    const answer = item.querySelector(".refund-answer");
    answer.textContent = response.ok ? body.message : (body.error && body.error.message) || "";
    for (const other of item.querySelectorAll("button")) other.hidden = true;
  }

  function askRefund(event) {
    const button = event.target;
    return refundStep(button, "/app/api/refunds/" + encodeURIComponent(button.dataset.order) + "/ask");
  }

  function answerAsk(action) {
    return function (event) {
      const button = event.target;
      return refundStep(button, "/app/api/refunds/" + encodeURIComponent(button.dataset.order) + "/" + action);
    };
  }

  // Closing the day takes two taps, as the chat's /close takes a button under its offer.
  async function closeDay(event) {
    const button = event.target;
    const answer = byId("close-answer");
    if (!button.dataset.armed) {
      button.dataset.armed = "1";
      answer.textContent = button.dataset.confirm;
      return;
    }
    button.disabled = true;
    const response = await call("/app/api/close", { method: "POST" });
    const body = await response.json();
    button.hidden = true;
    if (byId("check-day")) byId("check-day").hidden = true;
    if (response.ok) {
      byId("close-state").textContent = body.state;
      byId("close-state").className = "";
      answer.textContent = body.message;
    } else {
      answer.textContent = (body.error && body.error.message) || "";
    }
    byId("close").dataset.done = String(response.status);
  }

  // "Check against iPay" before closing, as /close offers it: the report shown under the buttons.
  async function checkDay(event) {
    const button = event.target;
    const box = byId("check-report");
    button.disabled = true;
    const response = await call("/app/api/close/check", { method: "POST" });
    const body = await response.json();
    box.textContent = "";
    const parts = response.ok ? body.report : [(body.error && body.error.message) || ""];
    for (const part of parts) {
      const p = document.createElement("p");
      p.textContent = part;
      box.append(p);
    }
    box.hidden = false;
    button.disabled = false;
  }

  function wire() {
    for (const button of document.querySelectorAll("button.refund")) button.addEventListener("click", refund);
    for (const button of document.querySelectorAll("button.ask")) button.addEventListener("click", askRefund);
    for (const button of document.querySelectorAll("button.approve")) button.addEventListener("click", answerAsk("approve"));
    for (const button of document.querySelectorAll("button.decline")) button.addEventListener("click", answerAsk("decline"));
    const close = byId("close-day");
    if (close) close.addEventListener("click", closeDay);
    const check = byId("check-day");
    if (check) check.addEventListener("click", checkDay);
    const form = byId("pay-form");
    if (!form) return;
    form.addEventListener("submit", sendPrompt);
    form.addEventListener("input", function (event) {
      if (event.target.id !== "network") formKey = null; // a changed form is a new payment
      if (event.target.id === "phone") guessNetwork();
    });
    byId("network").addEventListener("change", function () { formKey = null; });
    byId("request-link").addEventListener("click", requestLink);
    loadChart();
  }

  async function start() {
    theme();
    if (tg) { tg.ready(); tg.expand(); }
    const response = await call("/app/api/view");
    const type = response.headers.get("content-type") || "";
    if (type.startsWith("text/html")) {
      screen.innerHTML = await response.text(); // server-rendered, escaped by its templates
      const marked = byId("staff-only") || byId("counter");
      const lang = marked ? marked.dataset.lang : null;
      if (lang) document.documentElement.lang = lang;
    } else {
      const body = await response.json();
      screen.textContent = (body.error && body.error.message) || "";
    }
    document.body.dataset.ready = String(response.status);
    wire();
  }

  start();
})();
