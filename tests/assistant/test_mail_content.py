"""
What a person reads of a message, as the mail tools show it: the plain
version of an alternative, HTML read as text (hidden parts dropped, links
kept as addresses), attachments listed, and malformed mail read without
an error.
"""

from __future__ import annotations

from email.message import EmailMessage
from email.policy import SMTP

from gk.assistant.mail_content import contains_text, html_to_text, message_content


def test_the_plain_version_of_an_alternative_is_read_and_attachments_listed() -> None:
    message = EmailMessage(policy=SMTP)
    message["Subject"] = "Minutes"
    message.set_content("Plain minutes.\n")
    message.add_alternative("<p>HTML <b>minutes</b></p>", subtype="html")
    message.add_attachment(b"a,b\n1,2\n", maintype="text", subtype="csv", filename="data.csv")
    forwarded = EmailMessage(policy=SMTP)
    forwarded["Subject"] = "the original"
    forwarded.set_content("Forwarded words.\n")
    message.add_attachment(forwarded, disposition="attachment")

    content = message_content(message.as_bytes())

    assert content.text == "Plain minutes."
    assert content.from_html is False
    assert [(a.filename, a.content_type) for a in content.attachments] == [
        ("data.csv", "text/csv"),
        ("forwarded message", "message/rfc822"),
    ]
    assert content.attachments[0].size == 8


def test_html_reads_as_the_text_a_reader_sees() -> None:
    html = (
        "<html><head><style>.x{}</style><script>alert(1)</script></head><body>"
        "<div>Dear  Alice,</div><p>Total:&nbsp;42&euro; &amp; more<br>next line</p>"
        '<p><a href="mailto:bob@example.test">bob@example.test</a> or '
        '<a href="javascript:steal()">here</a></p><pre>  keep   spacing</pre>'
        "<table><tr><td>a</td><td>b</td></tr></table></body></html>"
    )
    assert html_to_text(html) == (
        "Dear Alice,\n\nTotal: 42€ & more\nnext line\n\n"
        "bob@example.test or here\n\nkeep   spacing\n\na b"
    )


def test_malformed_mail_is_read_without_an_error() -> None:
    unknown_charset = (
        b"Subject: x\r\nContent-Type: text/plain; charset=x-no-such-charset\r\n\r\nhello\r\n"
    )
    assert message_content(unknown_charset).text == "hello"
    latin1 = b"Subject: x\r\nContent-Type: text/plain\r\n\r\ncaf\xe9\r\n"
    assert message_content(latin1).text == "café"
    nested = b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n" * 50
    assert message_content(nested).text == ""
    unterminated = b"Content-Type: multipart/mixed; boundary=zz\r\n\r\n--zz\r\n\r\nonly part"
    assert message_content(unterminated).text == "only part"


def test_words_are_found_in_plain_and_encoded_bodies_alike() -> None:
    plain = b"Subject: x\r\n\r\nThe Quarterly report\r\n"
    assert contains_text(plain, "quarterly")
    assert not contains_text(plain, "annual")
    encoded = EmailMessage(policy=SMTP)
    encoded.set_content("Le rapport trimestriel", cte="base64")
    assert contains_text(encoded.as_bytes(), "TRIMESTRIEL")
    html = EmailMessage(policy=SMTP)
    html.set_content("<p>Tom &amp; Jerry</p><p>in<b>voice</b></p>", subtype="html", cte="8bit")
    assert contains_text(html.as_bytes(), "tom & jerry")
    assert contains_text(html.as_bytes(), "invoice")
