#!/usr/bin/env python3
"""Writes the signed inbound webhook events in events/ (inbound-*.json).

Twilio cases are signed as Twilio signs (X-Twilio-Signature: HMAC-SHA1 over the URL + sorted
params, token 12345, Twilio's own example token) for the public URL the other events use; Retell
cases carry x-retell-signature (HMAC-SHA256 of raw body + timestamp, key test-api-key, as in
Retell's SDK tests) at the timestamp in requestContext.timeEpoch, which the tests put on the
manual clock. Run it again after changing a case: python3 scripts/sign-events.py
"""
import base64, hashlib, hmac, json, os, urllib.parse

HOST = "abc123.execute-api.us-east-1.amazonaws.com"
TOKEN = b"12345"
RETELL_KEY = b"test-api-key"
EPOCH_MS = 1795462200000  # 2026-11-21T19:30:00Z, as the other events
ZEROS = "0" * 32
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "events")


def twilio_sig(url, params):
    s = url + "".join(k + v for k, v in sorted(params))
    return base64.b64encode(hmac.new(TOKEN, s.encode(), hashlib.sha1).digest()).decode()


def inbound_params(body, sid, opt_out=None, frm="+14155550100"):
    p = [("ToCountry", "US"), ("ToState", "CA"), ("SmsMessageSid", sid), ("NumMedia", "0"),
         ("SmsSid", sid), ("SmsStatus", "received"), ("Body", body), ("FromCountry", "US"),
         ("To", "+15005550006"), ("NumSegments", "1"), ("MessageSid", sid),
         ("AccountSid", "AC" + ZEROS), ("From", frm), ("ApiVersion", "2010-04-01")]
    if opt_out:
        p.append(("OptOutType", opt_out))
    return p


def event(path, body, headers, base64_body, time_ms=EPOCH_MS):
    return {
        "version": "2.0", "routeKey": "POST " + path, "rawPath": path, "rawQueryString": "",
        "headers": {"host": HOST, "x-forwarded-proto": "https", "x-forwarded-port": "443", **headers},
        "requestContext": {
            "accountId": "123456789012", "apiId": "abc123", "domainName": HOST, "domainPrefix": "abc123",
            "http": {"method": "POST", "path": path, "protocol": "HTTP/1.1", "sourceIp": "192.0.2.10",
                     "userAgent": headers.get("user-agent", "")},
            "requestId": "JKJaXmPLvHcESHA=", "routeKey": "POST " + path, "stage": "$default",
            "time": "21/Nov/2026:19:30:00 +0000", "timeEpoch": time_ms},
        "isBase64Encoded": base64_body,
        "body": base64.b64encode(body).decode() if base64_body else body.decode(),
    }


def twilio_event(params, signature=None):
    path = "/webhooks/twilio/inbound"
    body = urllib.parse.urlencode(params).encode()
    sig = signature or twilio_sig("https://" + HOST + path, params)
    return event(path, body, {"user-agent": "TwilioProxy/1.1", "content-type": "application/x-www-form-urlencoded",
                              "x-twilio-signature": sig}, True)


def retell_event(payload):
    path = "/webhooks/retell"
    body = json.dumps(payload, separators=(",", ":")).encode()
    d = hmac.new(RETELL_KEY, body + str(EPOCH_MS).encode(), hashlib.sha256).hexdigest()
    return event(path, body, {"user-agent": "axios/1.7", "content-type": "application/json",
                              "x-retell-signature": f"v={EPOCH_MS},d={d}"}, False)


REPLY_SID = "SM7e2f1c0a9b8d4e6f8a1b2c3d4e5f6a7b"
cases = {
    "inbound-reply": twilio_event(inbound_params("Yes! Tomorrow at 3pm works, thanks", REPLY_SID)),
    "inbound-duplicate": twilio_event(inbound_params("Yes! Tomorrow at 3pm works, thanks", REPLY_SID)),
    "inbound-stop": twilio_event(inbound_params("Stop", "SMa1b2c3d4e5f60718293a4b5c6d7e8f90", "STOP")),
    "inbound-start": twilio_event(inbound_params("START", "SMb1b2c3d4e5f60718293a4b5c6d7e8f91")),
    "inbound-help": twilio_event(inbound_params("help", "SMc1b2c3d4e5f60718293a4b5c6d7e8f92")),
    "inbound-bad-signature": twilio_event(inbound_params("STOP", "SMd1b2c3d4e5f60718293a4b5c6d7e8f93"),
                                          signature="AAAAAAAAAAAAAAAAAAAAAAAAAAA="),
    "inbound-retell-chat-inbound": retell_event({
        "event": "chat_inbound", "event_timestamp": EPOCH_MS,
        "chat_inbound": {"agent_id": "agent_12345", "agent_version": 1,
                         "from_number": "+14155550100", "to_number": "+15005550006"}}),
    "inbound-retell-chat-analyzed": retell_event({
        "event": "chat_analyzed",
        "chat": {"chat_id": "chat_98c1a2157aa0559144d67bb0729", "agent_id": "agent_12345", "chat_type": "sms_chat",
                 "chat_status": "ended", "start_timestamp": EPOCH_MS - 60000, "end_timestamp": EPOCH_MS,
                 "message_with_tool_calls": [
                     {"message_id": "msg_01", "role": "user", "content": "Is Thursday open?", "created_timestamp": EPOCH_MS - 60000},
                     {"message_id": "msg_02", "role": "agent", "content": "Yes: 10am or 2pm?", "created_timestamp": EPOCH_MS - 50000},
                     {"message_id": "msg_03", "role": "user", "content": "2pm", "created_timestamp": EPOCH_MS - 40000}],
                 "metadata": {"smsrelay": {"from_number": "+14155550100", "to_number": "+15005550006"}},
                 "chat_analysis": {"chat_summary": "Lead asked for Thursday 2pm.", "chat_successful": True,
                                   "custom_analysis_data": {"outcome": "qualified"}}}}),
}
for name, ev in cases.items():
    with open(os.path.join(OUT, name + ".json"), "w") as f:
        json.dump(ev, f, indent=2)
        f.write("\n")
    print("wrote events/%s.json" % name)
