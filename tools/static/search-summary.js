// The search page's result summaries, made safe (loaded with defer, so it runs after
// searchtools.js and before the search starts).
//
// Sphinx 7's search shows each result with a summary cut from the text of the element that
// the result's anchor names. For an index entry (each chapter's `{index}` topics) that
// element is an empty target, so Search.makeSearchSummary returns null and the page throws
// on appendChild(null), leaving the result without a snippet. Fall back to a summary of the
// whole page, and never hand back null.
(function () {
  if (typeof Search === "undefined" || typeof Search.makeSearchSummary !== "function") {
    return;
  }
  var summary = Search.makeSearchSummary;
  Search.makeSearchSummary = function (htmlText, keywords, anchor) {
    return (
      summary(htmlText, keywords, anchor) ||
      summary(htmlText, keywords, "") ||
      document.createElement("p")
    );
  };
})();
