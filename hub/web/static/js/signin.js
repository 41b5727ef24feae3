// Sign-in: a token the creator platform issued (pasted, kept in this tab's sessionStorage), or
// one click per demo user when the hub runs under `hub dev`.
import { api, ApiError, el, home, onSubmit, pageConfig, registerServiceWorker, session, show, wireSignOut } from "/app/static/js/common.js";

registerServiceWorker();
wireSignOut();
const status = document.getElementById("signin-status");
if (new URLSearchParams(location.search).has("expired")) {
  show(status, "Your session ended (the token expired or was refused): sign in again.", "error");
  history.replaceState(null, "", "/app/");
}

async function enter(token) {
  const me = await api("/api/v1/me", { token });
  session.signOut();
  session.signIn(token);
  location.assign(home(me.role));
}

// Wired before anything is awaited; the button stays disabled until then, so the form never
// submits by itself (it would POST, never put the token in a URL).
const notice = document.getElementById("token-notice");
const form = document.getElementById("token-form");
onSubmit(form, notice, async (data) => {
  try {
    await enter(data.get("token").trim());
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) show(notice, `That token was refused: ${error.message}`, "error");
    else throw error;
  }
});
form.querySelector("button").disabled = false;

if (session.token()) {
  try {
    const me = await api("/api/v1/me");
    document.getElementById("current-user").textContent = `${me.name || me.id} (${me.role})`;
    document.getElementById("continue-link").href = home(me.role);
    document.getElementById("continue").hidden = false;
  } catch { /* an expired token was dropped by api() */ }
}

const config = await pageConfig();
if (config.dev_signin) {
  const users = (await api("/app/dev/users", { token: null })).data;
  document.getElementById("demo-users").replaceChildren(...users.map((user) => {
    const button = el("button", { type: "button", "data-user": user.id }, `${user.name} — ${user.role}`);
    button.addEventListener("click", async () => {
      button.disabled = true;
      try {
        const { token } = await api("/app/dev/token", { method: "POST", body: { user_id: user.id }, token: null });
        await enter(token);
      } catch (error) {
        show(status, error.message, "error");
        button.disabled = false;
      }
    });
    return el("li", {}, button);
  }));
  document.getElementById("demo").hidden = false;
}
