// Typeset the page's formulas with the KaTeX bundled in assets/katex/ (no CDN: the site
// renders offline). pymdownx.arithmatex (generic mode) leaves each formula as the text of
// a .arithmatex element: \( inline \) in a span, \[ display \] or \begin{env}...\end{env}
// in a div. tests/test_docs.py renders every formula of the built site the same way.
(function () {
  "use strict";

  function source(text) {
    var t = text.trim();
    var m = /^\\\(([\s\S]*)\\\)$/.exec(t) || /^\\\[([\s\S]*)\\\]$/.exec(t);
    return m ? m[1] : t;
  }

  function typeset() {
    document.querySelectorAll(".arithmatex").forEach(function (el) {
      // throwOnError false: a formula KaTeX cannot parse stays visible as red source text.
      katex.render(source(el.textContent), el, {displayMode: el.tagName !== "SPAN", throwOnError: false});
    });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", typeset);
  } else {
    typeset();
  }
})();
