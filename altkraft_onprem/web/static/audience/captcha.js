// The proof-of-work robot check of the public subscription form (public.captcha = "pow"): the
// ALTCHA widget, with its PBKDF2 worker served from our own origin.
import "./../vendor/altcha/altcha.js";
import "./../vendor/altcha/ru.js";

const worker = new URL("../vendor/altcha/pbkdf2.js", import.meta.url);
for (const name of ["PBKDF2/SHA-256", "PBKDF2/SHA-384", "PBKDF2/SHA-512"]) {
  globalThis.$altcha.algorithms.set(name, () => new Worker(worker));
}
