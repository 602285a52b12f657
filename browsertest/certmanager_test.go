package browsertest

import (
	"strings"
	"time"

	"github.com/chromedp/chromedp"
)

// shadowTexts is a JavaScript function that lists the text of every
// element of the page (and the value of every input field), through the shadow roots Chromium's own pages
// (chrome://certificate-manager) are built of. With a label it clicks
// the first element whose own text is that label instead, and says
// whether it found one.
const shadowTexts = `(function(label) {
  const texts = [];
  let found = null;
  (function walk(root) {
    for (const el of root.querySelectorAll('*')) {
      if (el.tagName === 'STYLE' || el.tagName === 'SCRIPT') continue;
      if (el.tagName === 'INPUT' && el.value) texts.push(el.value);
      const own = [...el.childNodes].filter(n => n.nodeType === 3).map(n => n.textContent).join('').trim();
      if (own !== '') {
        texts.push(own);
        if (label && own === label && !found) found = el;
      }
      if (el.shadowRoot) walk(el.shadowRoot);
    }
  })(document);
  if (!label) return texts;
  if (found) found.click();
  return found !== null;
})`

// certificateManager opens Chromium's certificate manager at "Your
// certificates", the imported ones from the system (the NSS database),
// waits until it lists a certificate called name, and returns the texts
// it shows.
func (tb *tab) certificateManager(name string) []string {
	tb.t.Helper()
	tb.do("opening the certificate manager", chromedp.Navigate("chrome://certificate-manager/clientcerts"))
	tb.deepClick("View imported certificates from Linux")
	var texts []string
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		var err error
		texts, err = chromedp.Run(tb.ctx, chromedp.Evaluate[[]string](shadowTexts+`("")`))
		if err != nil {
			tb.t.Fatalf("reading the certificate manager: %v", err)
		}
		for _, s := range texts {
			if s == name {
				return texts
			}
		}
	}
	tb.t.Fatalf("the certificate manager did not list %q among the imported client certificates; it shows %q", name, strings.Join(texts, " | "))
	return nil
}

// deepClick clicks the element of a Chromium page whose own text is label,
// waiting up to 10s for it to appear.
func (tb *tab) deepClick(label string) {
	tb.t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		ok, err := chromedp.Run(tb.ctx, chromedp.Evaluate[bool](shadowTexts+`(`+jsString(label)+`)`))
		if err != nil {
			tb.t.Fatalf("clicking %q: %v", label, err)
		}
		if ok {
			return
		}
	}
	tb.t.Fatalf("%s shows nothing called %q", tb.location(), label)
}

// jsString quotes s as a JavaScript string literal (the labels are plain
// ASCII words).
func jsString(s string) string {
	return `'` + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + `'`
}
