//! HTML → text on real-world markup.

use workbridge_mapping::{html_to_text, sanitize_html};

#[test]
fn azure_devops_repro_steps() {
    let html = "<div><b>Steps to reproduce</b></div><ol><li>Open <a href=\"https://shop/invoices\">Invoices</a></li><li>Click&nbsp;<i>Print</i></li></ol><div>Expected: a PDF<br>Actual: a blank page</div>";
    assert_eq!(
        html_to_text(html),
        "Steps to reproduce\n1. Open Invoices\n2. Click Print\nExpected: a PDF\nActual: a blank page"
    );
}

#[test]
fn alm_memo_with_div_and_font() {
    let html = "<html><body>\n<div align=\"left\"><font face=\"Arial\"><span style=\"font-size:8pt\">Login fails for users with an apostrophe: O&#39;Brien</span></font></div>\n<div align=\"left\"><font face=\"Arial\"><span style=\"font-size:8pt\">Seen on build 4.2 &amp; 4.3</span></font></div>\n</body></html>";
    assert_eq!(
        html_to_text(html),
        "Login fails for users with an apostrophe: O'Brien\nSeen on build 4.2 & 4.3"
    );
}

#[test]
fn nested_lists_and_tables_stay_readable() {
    let html = "<ul><li>Billing<ul><li>Invoices</li><li>Refunds</li></ul></li><li>Checkout</li></ul><table><tr><th>Build</th><th>Result</th></tr><tr><td>4.2</td><td>fail</td></tr></table>";
    let text = html_to_text(html);
    assert!(
        !text.contains('*') && !text.contains('|') && !text.contains("--"),
        "no decorations: {text}"
    );
    assert!(
        text.contains("• Billing\n  • Invoices"),
        "nesting shows: {text}"
    );
    for word in [
        "Billing", "Invoices", "Refunds", "Checkout", "Build", "Result", "4.2", "fail",
    ] {
        assert!(text.contains(word), "{word} in {text}");
    }
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines
            .iter()
            .any(|l| l.contains("4.2") && l.contains("fail")),
        "a table row stays on one line: {text}"
    );
    assert!(
        lines.iter().position(|l| l.contains("Invoices"))
            < lines.iter().position(|l| l.contains("Checkout"))
    );
}

#[test]
fn entities_and_scripts() {
    assert_eq!(
        html_to_text("<p>&lt;b&gt; is bold &amp;&nbsp;&quot;quoted&quot; &euro;5</p>"),
        "<b> is bold & \"quoted\" €5"
    );
    let text =
        html_to_text("<p>Hello</p><script>document.cookie</script><style>p{color:red}</style>");
    assert_eq!(text, "Hello");
    let clean = sanitize_html(
        "<div onload=\"steal()\">Hi <img src=x onerror=alert(1)><a href=\"javascript:alert(1)\">x</a><script>alert(2)</script></div>",
    );
    assert!(
        !clean.contains("onload")
            && !clean.contains("onerror")
            && !clean.contains("javascript")
            && !clean.contains("<script"),
        "{clean}"
    );
}
