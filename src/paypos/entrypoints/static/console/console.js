// paypos console: htmx requests carry the session's CSRF token (X-CSRF-Token), read from the
// page's <meta name="csrf-token">. No other script runs on console pages.
document.addEventListener("htmx:configRequest", function (event) {
  var meta = document.querySelector('meta[name="csrf-token"]');
  if (meta) { event.detail.headers["X-CSRF-Token"] = meta.getAttribute("content"); }
});
