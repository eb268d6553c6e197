(function () {
  // Deadlines are rendered by the server; this only keeps them counting.  The server's
  // clock is the reference: the offset to this browser's clock is taken once.
  var offset = Date.parse(document.body.dataset.now) - Date.now();
  function fmt(ms) {
    var s = Math.floor(Math.abs(ms) / 1000), d = Math.floor(s / 86400), h = Math.floor(s % 86400 / 3600),
        m = Math.floor(s % 3600 / 60), r = s % 60, p = function (n) { return (n < 10 ? "0" : "") + n; };
    if (d) return d + "d" + (h ? " " + h + "h" : "");
    if (h) return h + "h " + p(m) + "m";
    if (m) return m + "m " + p(r) + "s";
    return r + "s";
  }
  function tick() {
    var now = Date.now() + offset;
    document.querySelectorAll("time.countdown").forEach(function (el) {
      var left = Date.parse(el.getAttribute("datetime")) - now;
      el.textContent = left >= 0 ? "in " + fmt(left) : "overdue " + fmt(left);
      el.classList.toggle("overdue", left < 0);
    });
  }
  tick();
  setInterval(tick, 1000);
})();
