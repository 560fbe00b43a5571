#!/usr/bin/env python3
"""The browser of tests/connect_oauth.rs: opens an authorization URL, follows redirects with a
cookie jar, submits the authorization server's login form (any login and password: the dev
interactions of oidc-provider) and its consent form, and stops when the redirect to the
loopback callback has been answered. Prints the final URL (it holds the code, so the test can
check that no output of Sluice shows it) and the page's text. Standard library only."""
import html
import http.cookiejar
import re
import sys
import urllib.parse
import urllib.request

url = sys.argv[1]
jar = http.cookiejar.CookieJar()
opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
resp = opener.open(url, timeout=30)
for _ in range(8):
    final = resp.geturl()
    body = resp.read().decode("utf-8", "replace")
    if "/callback" in urllib.parse.urlsplit(final).path:
        print(final)
        print(re.sub(r"<[^>]+>", "", body).strip())
        sys.exit(0)
    form = re.search(r'<form[^>]*action="([^"]+)"', body)
    if not form:
        print("no form at " + urllib.parse.urlsplit(final).path, file=sys.stderr)
        print(body, file=sys.stderr)
        sys.exit(1)
    action = urllib.parse.urljoin(final, html.unescape(form.group(1)))
    fields = {}
    for tag in re.findall(r"<input[^>]*>", body):
        name = re.search(r'name="([^"]*)"', tag)
        value = re.search(r'value="([^"]*)"', tag)
        if name:
            fields[name.group(1)] = html.unescape(value.group(1)) if value else ""
    if "login" in fields:
        fields["login"] = "jane.doe"
        fields["password"] = "any-password"
    resp = opener.open(action, urllib.parse.urlencode(fields).encode(), timeout=30)
print("too many steps", file=sys.stderr)
sys.exit(1)
