"""Every setting, declared once: key, kind of value, default, help. The loader validates
against this table, and `config.example.toml` and `docs/configuration.md` are generated from
it (tests fail when they drift). Add a setting here, then run `make docs`.
"""
from __future__ import annotations

from .values import (
    REQUIRED,
    Setting,
    _bool,
    _choice,
    _choice_list,
    _database_url,
    _feedback_id_part,
    _float,
    _host_port,
    _host_port_or_empty,
    _http_url,
    _int,
    _ip,
    _ip_list,
    _iso_date,
    _item,
    _nameserver_list,
    _network_list,
    _non_negative,
    _optional_http_url,
    _positive,
    _positive_int_list,
    _queue_name,
    _redis_url,
    _str,
    _str_list,
    _tables,
)

# One IP address may fail this many times security.login_max_failures before it is refused: an
# office behind one NAT address has many people in it.
LOGIN_FAILURES_PER_IP_FACTOR = 4

SMTP_RELAY_FIELDS = (
    _item("host", _str, REQUIRED, "Relay host name or address."),
    _item("port", _positive(_int), 25, "Relay port.", "integer"),
    _item("security", _choice("none", "starttls", "tls"), "starttls",
          '"none", "starttls" (upgrade on port 25/587) or "tls" (implicit TLS, port 465).'),
    _item("username", _str, "", "Login for SMTP AUTH; empty for none."),
    _item("password_file", _str, "", "File holding the SMTP password (readable by the service user only)."),
    _item("max_connections", _positive(_int), 4, "Connections open to the relay at most, counted over every process and host of the installation (campaign senders wait for a free one).", "integer"),
    _item("helo", _str, "", "Name sent in EHLO; empty uses the host's FQDN."),
    _item("verify_tls", _bool, True, "Verify the relay's TLS certificate.", "boolean"),
)

DKIM_KEY_FIELDS = (
    _item("domain", _str, REQUIRED, "Signing domain (d=)."),
    _item("selector", _str, REQUIRED, "Selector (s=); the public key is at SELECTOR._domainkey.DOMAIN."),
    _item("key_file", _str, REQUIRED, "PEM private key, readable by the service user only."),
    _item("algorithm", _choice("rsa-sha256", "ed25519-sha256"), "rsa-sha256",
          '"rsa-sha256" or "ed25519-sha256" (added as a second signature).'),
)


IMAP_MAILBOX_FIELDS = (
    _item("host", _str, REQUIRED, "IMAP server host name or address."),
    _item("port", _positive(_int), 993, "IMAP port (993 with tls, 143 with starttls or none).", "integer"),
    _item("security", _choice("tls", "starttls", "none"), "tls",
          '"tls" (implicit TLS), "starttls" or "none" (only on a trusted network).'),
    _item("verify_tls", _bool, True, "Verify the server's TLS certificate.", "boolean"),
    _item("username", _str, REQUIRED, "Login name."),
    _item("password_file", _str, "", "File holding the password (readable by the service user only)."),
    _item("xoauth2_token_file", _str, "",
          "Instead of a password: a file holding an OAuth 2 access token (XOAUTH2, e.g. for "
          "Microsoft 365 or Gmail), kept fresh by the site's token tool."),
    _item("folder", _str, "INBOX", "The folder that receives bounces and reports."),
    _item("processed_folder", _str, "Processed", "Where read messages are moved (created if missing)."),
    _item("unmatched_folder", _str, "Unmatched",
          "Where messages that match nothing sent from here are moved (created if missing); "
          "nothing is ever deleted."),
    _item("rcpt", _str, "",
          "The address this mailbox receives for (e.g. the FBL address); empty: each message's "
          "Delivered-To, X-Original-To or To header."),
    _item("idle", _bool, True,
          "While `altkraft inbound` runs, wait for new mail with IMAP IDLE where the server "
          "offers it (read within seconds); false, or a server without IDLE: it polls every "
          "minute. Without `altkraft inbound` the mailbox is polled every minute.", "boolean"),
)

SENDING_DOMAIN_FIELDS = (
    _item("domain", _str, REQUIRED, "The From domain (normalised: lower case, IDN as xn--)."),
    _item("bounce_domain", _str, "",
          "Domain of this domain's VERP Return-Path; empty: delivery.bounce_domain."),
    _item("tracking_host", _str, "",
          "Host of this domain's click and open links (e.g. click.example.com, aligned with the "
          "From domain); empty: the host of server.public_url."),
    _item("warmup", _bool, False, "Warm-up: a daily quota per mailbox provider growing on "
          "deliverability.warmup_curve.", "boolean"),
    _item("warmup_started_on", _str, "", "First day of the warm-up (YYYY-MM-DD)."),
)

WARMUP_IP_FIELDS = (
    _item("ip", _ip, REQUIRED, "The new sending IP address (the relay's, when relaying)."),
    _item("started_on", _iso_date, REQUIRED, "First day of its warm-up (YYYY-MM-DD, UTC)."),
)

DOMAIN_LIMIT_FIELDS = (
    _item("domain", _str, REQUIRED, "Recipient domain, e.g. gmail.com."),
    _item("per_second", _positive(_float), REQUIRED, "Messages per second to that domain.", "number"),
)

SETTINGS: tuple[Setting, ...] = (
    Setting("data_dir", _str, "./altkraft-data",
            "Directory for the SQLite database, the SQLite queue, uploaded media and the secret key. "
            "Must be writable by the service user only.", "path"),
    Setting("secret_key_file", _str, "",
            "File with the key that signs sessions and links (0600). Empty: DATA_DIR/secret_key, "
            "created on first start.", "path"),
    Setting("log_level", _choice("debug", "info", "warning", "error"), "warning",
            'Logging level: "warning" logs problems only; "info" adds a line per background job '
            'and server event (as `--verbose` does); "debug" or "error".'),

    Setting("server.bind", _host_port, "127.0.0.1:8080",
            "Address and port the web service listens on. Put a TLS-terminating proxy in front "
            "for anything but localhost."),
    Setting("server.public_url", _http_url, "http://127.0.0.1:8080",
            "URL at which recipients and staff reach this service; used in links in mail. "
            "With https:// the session cookie is marked Secure."),
    Setting("server.workers", _positive(_int), 2, "gunicorn worker processes.", "integer"),
    Setting("server.threads", _positive(_int), 1500,
            "Threads per worker process, created as needed. Each held reading-time stream uses "
            "one for up to tracking.read_cap_seconds, so 2 workers x 1500 keep the UI responsive "
            "with 2,000 streams open (bench/tracking.py).", "integer"),
    Setting("server.worker_connections", _positive(_int), 4000,
            "Open connections one worker process accepts (held reading-time streams count).",
            "integer"),
    Setting("server.graceful_timeout", _positive(_int), 30,
            "Seconds a stopping service waits for requests and running jobs to finish.", "integer"),
    Setting("server.trusted_proxies", _non_negative(_int), 0,
            "Reverse proxies in front of the service whose X-Forwarded-For/-Proto headers are "
            "trusted (0: none, the client address is the peer's).", "integer"),
    Setting("server.metrics_allowed_networks", _network_list, [],
            "Networks (CIDR) whose addresses may read /metrics without a token. Empty: only an "
            "API token whose role has metrics:read may (loopback is not special).", "list of strings",
            example=["127.0.0.1/32", "10.0.0.0/8"]),

    Setting("database.url", _database_url, "",
            "SQLAlchemy URL. Empty: SQLite file DATA_DIR/altkraft.db. For scale-out: "
            "postgresql://USER@HOST/DB (password in the URL or a libpq .pgpass file).", "url",
            example="postgresql://altkraft@127.0.0.1/altkraft"),
    Setting("database.pool_size", _positive(_int), 5, "Connections kept per process (Postgres).", "integer"),
    Setting("database.busy_timeout_ms", _positive(_int), 10000,
            "How long a writer waits for a lock (SQLite: the database's write lock; Postgres: "
            "lock_timeout) before giving up; a request then answers 503 with Retry-After.",
            "integer"),

    Setting("queue.backend", _choice("sqlite", "redis"), "sqlite",
            '"sqlite" (a file in DATA_DIR, one machine) or "redis" (shared by many machines).'),
    Setting("queue.redis_url", _redis_url, "redis://127.0.0.1:6379/0",
            "Redis used when queue.backend is \"redis\"."),
    Setting("queue.name", _queue_name, "altkraft",
            "Queue name; appliances that share one Redis need different names.", "string"),
    Setting("queue.workers", _positive(_int), 2, "Job workers started by `altkraft run` and `altkraft worker`.", "integer"),
    Setting("queue.worker_type", _choice("process", "thread"), "process",
            '"process" (CPU-bound work in parallel) or "thread".'),

    Setting("security.session_hours", _positive(_int), 12,
            "A login session ends after this many hours without use.", "integer"),
    Setting("security.login_max_failures", _positive(_int), 5,
            "Failed logins for one email address before logins for it are refused for a while; "
            f"one IP address may fail {LOGIN_FAILURES_PER_IP_FACTOR} times as many before logins "
            "from it are refused.", "integer"),
    Setting("security.login_lockout_minutes", _positive(_int), 15,
            "How long logins stay refused after too many failures.", "integer"),
    Setting("security.api_token_days", _non_negative(_int), 0,
            "Days an API token stays valid; 0: until revoked.", "integer"),

    Setting("oidc.issuer", _optional_http_url, "",
            "OpenID Connect single sign-on: the identity provider's issuer URL (its "
            "/.well-known/openid-configuration is read from there). Empty: no single sign-on.",
            example="https://sso.example.com/realms/staff"),
    Setting("oidc.client_id", _str, "", "The client id this service has at the identity provider.",
            example="altkraft"),
    Setting("oidc.client_secret_file", _str, "",
            "File holding the client secret (readable by the service user only).",
            example="/etc/altkraft/oidc_client_secret"),
    Setting("oidc.scopes", _str, "openid email profile", "Scopes asked for; must include openid and email."),
    Setting("oidc.allowed_domains", _str_list, [],
            "Email domains that may sign in by single sign-on, e.g. [\"example.com\"]. Empty: any "
            "address the provider vouches for.", "list of strings"),
    Setting("oidc.create_users", _bool, False,
            "Create an account at the first single sign-on of an address that has none (with "
            "oidc.default_role); false: only existing, active users may sign in that way.", "boolean"),
    Setting("oidc.default_role", _str, "Viewer",
            "The role of accounts created by single sign-on (a built-in or custom role's name)."),

    Setting("i18n.default_locale", _choice("en", "ru"), "en",
            'Language for users who did not choose one: "en" or "ru".'),

    Setting("smtp.relays", _tables(SMTP_RELAY_FIELDS, "relay"), [],
            "SMTP relays mail is handed to, as [[smtp.relays]] tables.", "list of tables",
            example=[{"host": "smtp.example.com", "port": 587, "security": "starttls",
                      "username": "altkraft", "password_file": "/etc/altkraft/smtp_password",
                      "max_connections": 4}],
            item_fields=SMTP_RELAY_FIELDS),
    Setting("dkim.keys", _tables(DKIM_KEY_FIELDS, "DKIM key"), [],
            "DKIM signing keys, as [[dkim.keys]] tables; `altkraft-install dkim generate` adds them.",
            "list of tables",
            example=[{"domain": "example.com", "selector": "ak1",
                      "key_file": "/etc/altkraft/dkim/ak1.example.com.key", "algorithm": "rsa-sha256"}],
            item_fields=DKIM_KEY_FIELDS),

    Setting("campaigns.max_lateness", _positive(_float), 6.0,
            "Hours a scheduled campaign may be late (the service was down across its time) and "
            "still start by itself; one later is put back to draft with the reason on its page, "
            "to be started or scheduled again by hand.", "number"),
    Setting("delivery.processes", _non_negative(_int), 0,
            "Sender processes per campaign run, each with one SMTP session (rendering and "
            "signing run in them too); 0: as many as the relays' max_connections allow.", "integer"),
    Setting("delivery.batch_size", _positive(_int), 250,
            "Ledger rows a sender claims at once (pause and cancel take effect between batches).",
            "integer"),
    Setting("delivery.lease_seconds", _positive(_int), 300,
            "A claimed batch returns to the queue if its sender has not finished it in this time "
            "(a sender on this host that died is noticed at once).", "integer"),
    Setting("delivery.retry_seconds", _positive(_float), 60.0,
            "First retry delay after a temporary failure (4xx, dropped connection); doubles per "
            "attempt.", "number"),
    Setting("delivery.retry_max_hours", _positive(_float), 24.0,
            "A message still failing temporarily this long after its first attempt is failed.",
            "number"),
    Setting("delivery.retry_lost_replies", _bool, False,
            "A relay that drops the connection after the end of a message without answering may "
            "have accepted it. false (default): the row ends in_doubt with the reason and is never "
            "sent again (at most once: nobody gets it twice, some may not get it at all). true: it "
            "is retried like a temporary failure (at least once: the person may get it twice).",
            "boolean"),
    Setting("delivery.sending_domains", _tables(SENDING_DOMAIN_FIELDS, "sending domain"), [],
            "Per From domain: its bounce domain, tracking host and warm-up, as "
            "[[delivery.sending_domains]] tables. Usually managed on the Settings page (stored "
            "in the database, layered over this file: a domain there wins).", "list of tables",
            example=[{"domain": "example.com", "bounce_domain": "bounces.example.com",
                      "tracking_host": "click.example.com"}],
            item_fields=SENDING_DOMAIN_FIELDS),
    Setting("delivery.domain_limits", _tables(DOMAIN_LIMIT_FIELDS, "domain limit"), [],
            "Per-destination-domain sending rates, as [[delivery.domain_limits]] tables.",
            "list of tables", example=[{"domain": "gmail.com", "per_second": 50}],
            item_fields=DOMAIN_LIMIT_FIELDS),
    Setting("delivery.feedback_id_sender", _feedback_id_part, "",
            "The sender part of the Feedback-ID header (CAMPAIGN:LIST:campaign:SENDER, Gmail's "
            "CampaignId:CustomerId:MailType:SenderId), by which mailbox "
            "providers' feedback loops (Gmail's) group complaints; empty: the campaign's From "
            "domain.", example="example.com"),
    Setting("delivery.bounce_domain", _str, "",
            "Domain of the VERP Return-Path (bounces+CAMPAIGN-SUBSCRIBER-MAC@DOMAIN); empty: the "
            "From domain.", example="bounces.example.com"),

    Setting("deliverability.sending_ips", _ip_list, [],
            "Public IP addresses mail leaves from (the relay's, when relaying), for the PTR and SPF "
            "checks of `altkraft-install check-dns` and the Deliverability page.", "list of strings",
            example=["192.0.2.25"]),
    Setting("deliverability.warmup_curve", _positive_int_list,
            [50, 100, 200, 400, 750, 1000, 1500, 2000, 3000, 4500, 6500, 9000, 12500, 17500,
             25000, 35000, 50000, 70000, 100000, 140000],
            "Warm-up of a new sending domain or IP: campaign messages per mailbox provider "
            "(Gmail, Outlook, Yahoo, Mail.ru, Yandex, all others together) on day 1, 2, … of "
            "the warm-up; what is over a day's figure is held and sent the next day(s). After "
            "the last day the warm-up is over.", "list of integers"),
    Setting("deliverability.warmup_ips", _tables(WARMUP_IP_FIELDS, "warm-up IP"), [],
            "New sending IPs being warmed up, as [[deliverability.warmup_ips]] tables: every "
            "campaign message counts against each one's deliverability.warmup_curve (the relay "
            "sends everything from its addresses). Domains are warmed up on the Settings page.",
            "list of tables", example=[{"ip": "192.0.2.26", "started_on": "2026-12-01"}],
            item_fields=WARMUP_IP_FIELDS),
    Setting("deliverability.nameservers", _nameserver_list, [],
            "DNS servers (IP or IP:PORT) the DNS checks ask; empty: the host's resolvers.",
            "list of strings", example=["192.0.2.53"]),
    Setting("deliverability.ip_blocklists", _str_list,
            ["zen.spamhaus.org", "b.barracudacentral.org", "bl.spamcop.net", "psbl.surriel.com"],
            "DNS blocklists (zones) the sending IPs are looked up in, daily and on demand. "
            "Spamhaus answers only queries from resolvers it can tell apart: behind a big "
            "public resolver its answers say \"could not check\".", "list of strings"),
    Setting("deliverability.domain_blocklists", _str_list, ["dbl.spamhaus.org", "multi.surbl.org"],
            "Domain blocklists the From, bounce, tracking and link domains are looked up in.",
            "list of strings"),
    Setting("deliverability.check_timeout_seconds", _positive(_float), 3.0,
            "Time limit of one DNS query of the checks; a server that does not answer in time "
            "makes that check \"could not check\", never a failure.", "number"),
    Setting("deliverability.dkim_retire_days", _positive(_int), 7,
            "Days a DKIM key replaced by a rotation stays (not signing, its record still "
            "published) before the daily check removes it.", "integer"),
    Setting("deliverability.probe_timeout_seconds", _positive(_float), 5.0,
            "Time limit of the compliance panel's live probes: the STARTTLS handshake with each "
            "relay and the self-test POST to the one-click unsubscribe URL.", "number"),
    Setting("deliverability.compliance_window_days", _positive(_int), 7,
            "Days of campaigns the compliance panel counts the spam-complaint rate over (and whose "
            "From domains it checks).", "integer"),
    Setting("deliverability.spamd_address", _host_port_or_empty, "127.0.0.1:783",
            "SpamAssassin's spamd (Debian: apt-get install spamd) that scores messages before "
            "they are sent. Nothing answering there is shown as \"not installed\"; empty "
            "switches the score off.", example="127.0.0.1:783"),
    Setting("deliverability.spamd_timeout_seconds", _positive(_float), 20.0,
            "Time limit of one spamd scoring.", "number"),
    Setting("deliverability.presend_block_spam_score", _non_negative(_float), 0.0,
            "A campaign whose message scores this much or more at spamd does not start (0: the "
            "score only warns).", "number"),
    Setting("deliverability.presend_block_codes", _choice_list(
        "spam_score", "link_domain_listed", "no_text_part", "gmail_clipping", "image_text_ratio",
        "dkim_not_verified", "no_unsubscribe_link", "not_composed"), [],
            "Pre-send findings that stop a campaign's start instead of warning, by code (e.g. "
            "\"no_unsubscribe_link\", \"link_domain_listed\", \"dkim_not_verified\", "
            "\"gmail_clipping\"); empty: every finding only warns.", "list of strings",
            example=["no_unsubscribe_link", "link_domain_listed"]),

    # --- inbound mail (bounces, complaints, mailto unsubscribes, DMARC reports) ---------------
    Setting("inbound.smtp_listen", _host_port, "127.0.0.1:2525",
            "Where `altkraft inbound` (the receiver for the bounce domain) listens when systemd "
            "does not hand it a socket. Behind the site's MTA keep it on 127.0.0.1 and route the "
            "bounce domain to it (docs/deliverability.md)."),
    Setting("inbound.bounce_domain", _str, "",
            "A further domain the receiver accepts VERP and unsubscribe addresses at; empty: "
            "delivery.bounce_domain only (that setting stays the source of truth for outgoing "
            "mail). With neither set, addresses are accepted at any domain (their MAC decides).",
            example="bounces.example.com"),
    Setting("inbound.fbl_addresses", _str_list, [],
            "Addresses registered with the mailbox providers' feedback loops (ARF complaint "
            "reports arrive there).", "list of strings", example=["fbl@bounces.example.com"]),
    Setting("inbound.dmarc_address", _str, "",
            "Address named in the DMARC record's rua= tag (aggregate reports arrive there).",
            example="dmarc@bounces.example.com"),
    Setting("inbound.imap", _tables(IMAP_MAILBOX_FIELDS, "IMAP mailbox"), [],
            "Existing mailboxes that receive bounces or FBL reports, as [[inbound.imap]] tables: "
            "`altkraft inbound` waits for their new mail with IMAP IDLE (else they are polled "
            "every minute).", "list of tables",
            example=[{"host": "imap.example.com", "username": "fbl@example.com",
                      "password_file": "/etc/altkraft/imap_password", "rcpt": "fbl@example.com"}],
            item_fields=IMAP_MAILBOX_FIELDS),
    Setting("inbound.webhooks.ses_topic_arns", _str_list, [],
            "Amazon SNS topics whose SES bounce/complaint notifications are accepted at "
            "/hooks/inbound/ses (signatures are checked against Amazon's certificate).",
            "list of strings", example=["arn:aws:sns:eu-central-1:123456789012:ses-feedback"]),
    Setting("inbound.webhooks.sendgrid_public_key", _str, "",
            "SendGrid Event Webhook verification key (the base64 public key SendGrid shows); "
            "empty: /hooks/inbound/sendgrid is off."),
    Setting("inbound.webhooks.mailgun_signing_key_file", _str, "",
            "File holding Mailgun's webhook signing key; empty: /hooks/inbound/mailgun is off.", "path"),
    Setting("inbound.webhooks.postmark_basic_auth_file", _str, "",
            "File holding USER:PASSWORD that Postmark sends as basic auth (put them in the webhook "
            "URL); empty: /hooks/inbound/postmark is off.", "path"),
    Setting("inbound.webhooks.sparkpost_basic_auth_file", _str, "",
            "File holding USER:PASSWORD that SparkPost sends as basic auth; empty: "
            "/hooks/inbound/sparkpost is off.", "path"),
    Setting("inbound.webhooks.postal_public_key", _str, "",
            "Postal's webhook signing public key (base64, as Postal shows it); empty: "
            "/hooks/inbound/postal is off."),
    Setting("inbound.max_message_kb", _positive(_int), 10240,
            "Largest message the receiver accepts, in kilobytes (bigger ones get 552).", "integer"),
    Setting("inbound.messages_per_ip_minute", _positive(_int), 6000,
            "Messages one client IP address may deliver per minute (more get 421).", "integer"),
    Setting("inbound.tls_cert_file", _str, "",
            "PEM certificate (chain) for STARTTLS; empty: the receiver offers no STARTTLS.", "path"),
    Setting("inbound.tls_key_file", _str, "",
            "PEM private key of inbound.tls_cert_file, readable by the service user only.", "path"),
    Setting("inbound.soft_bounce_limit", _positive(_int), 3,
            "Soft bounces (mailbox full, timeouts) that suppress an address, counted since its "
            "last open or click, over at least two campaigns.", "integer"),
    Setting("inbound.soft_bounce_days", _positive(_int), 30,
            "Soft bounces older than this many days are not counted.", "integer"),
    Setting("inbound.complaint_warn_percent", _positive(_float), 0.1,
            "A campaign whose spam complaints at one mailbox provider reach this share of what "
            "it delivered there raises a deliverability alert (the Gmail/Yahoo bulk-sender "
            "line is 0.1 %).", "number"),
    Setting("inbound.complaint_pause_percent", _positive(_float), 0.3,
            "At this complaint rate at one provider the campaign is paused, with the reason on "
            "its page (Gmail and Yahoo start refusing bulk mail at 0.3 %).", "number"),
    Setting("inbound.complaint_min_delivered", _positive(_int), 1000,
            "The complaint rate of a campaign at a provider is judged once it delivered at "
            "least this many messages there (a few complaints among a few messages say little).",
            "integer"),
    Setting("inbound.breaker_percent", _non_negative(_float), 10.0,
            "Sending to a mailbox provider (Gmail, Outlook, Yahoo, Mail.ru, Yandex, the rest) "
            "stops for every campaign when this share of the last inbound.breaker_messages "
            "messages a campaign sent there was refused for policy or content, deferred for "
            "reputation or reported as spam; a person resumes it. 0 switches the breakers off.",
            "number"),
    Setting("inbound.breaker_messages", _positive(_int), 500,
            "How many of a campaign's latest messages to a provider its circuit breaker judges "
            "(none before the campaign sent that many there).", "integer"),

    Setting("imports.max_archive_bytes", _positive(_int), 2 * 1024**3,
            "An uploaded .zip/.tar.gz may unpack to at most this many bytes (all members).", "integer"),
    Setting("imports.max_archive_members", _positive(_int), 1000,
            "An uploaded archive may hold at most this many members.", "integer"),
    Setting("imports.max_compression_ratio", _positive(_float), 200.0,
            "Archives (and .xlsx files) unpacking to more than this many times their size are "
            "refused as zip bombs.", "number"),
    Setting("imports.batch_size", _positive(_int), 5000,
            "Rows an import validates and writes as one batch; the batches that arrive within a "
            "second share a transaction (progress is updated after each commit).", "integer"),

    Setting("tracking.glance_seconds", _positive(_float), 2.0,
            "A reading-time stream held less than this is a glance.", "number"),
    Setting("tracking.read_seconds", _positive(_float), 8.0,
            "A stream held at least this long is a read (between the two: skimmed).", "number"),
    Setting("tracking.read_cap_seconds", _positive(_float), 30.0,
            "The reading-time stream ends after this many seconds (counted as read).", "number"),
    Setting("tracking.anonymise_ip", _bool, False,
            "Store only the network of a recipient's IP (IPv4 /24, IPv6 /48) with each event.",
            "boolean"),
    Setting("tracking.flush_events", _positive(_int), 500,
            "Each web worker writes its buffered events in one batch when this many are waiting.",
            "integer"),
    Setting("tracking.flush_interval_ms", _positive(_int), 1000,
            "Buffered events are written at the latest after this many milliseconds.", "integer"),
    Setting("tracking.scanner_window_seconds", _positive(_float), 10.0,
            "Clicks by one recipient on several links within this many seconds (or this soon "
            "after delivery) are labelled as a security scanner.", "number"),
    Setting("tracking.scanner_links", _positive(_int), 3,
            "Distinct links clicked within the scanner window that mark a scanner.", "integer"),
    Setting("tracking.apple_proxy_networks", _str_list, ["17.0.0.0/8"],
            "Networks of Apple Mail Privacy Protection's image proxies (opens from them with a "
            "bare user agent are machine opens).", "list of strings"),

    Setting("audience.trash_days", _positive(_int), 30,
            "Deleted subscribers stay restorable in the trash this many days, then are erased.",
            "integer"),
    Setting("audience.confirm_hours", _positive(_int), 72,
            "Double opt-in confirmation links expire after this many hours.", "integer"),
    Setting("audience.from_email", _str, "",
            "Sender of confirmation emails (a list's form may override it); empty: "
            "noreply@ the public URL's host.", "string"),
    Setting("audience.from_name", _str, "", "Sender name of confirmation emails.", "string"),
    Setting("audience.reply_to", _str, "",
            "Default Reply-To of new campaigns and of confirmation emails; empty: none.", "string"),
    Setting("audience.default_optin", _choice("single", "double"), "single",
            'Opt-in of a new list when none is chosen: "single" or "double" (a confirmation '
            "email before the person is subscribed)."),
    Setting("audience.form_signups_per_hour", _positive(_int), 20,
            "Sign-ups a public subscription form accepts from one IP address per hour (more "
            "get 429); against list bombing through the confirmation email.", "integer"),

    Setting("public.captcha", _choice("pow", "hcaptcha", "turnstile", "smartcaptcha", "off"), "pow",
            'The robot check of public subscription forms: "pow" (a proof of work the browser '
            "solves, served by this installation: no third party), \"hcaptcha\", "
            '"turnstile" (Cloudflare), "smartcaptcha" (Yandex), or "off". The honeypot field '
            "and audience.form_signups_per_hour apply in every case."),
    Setting("public.captcha_max_number", _positive(_int), 6000,
            'Difficulty of "pow": the browser tries up to this many numbers (each a small '
            "PBKDF2 computation); the default takes a phone about a second.", "integer"),
    Setting("public.captcha_expire_minutes", _positive(_int), 10,
            'A "pow" challenge must be solved and sent within this many minutes; each solved '
            "challenge is accepted once.", "integer"),
    Setting("public.captcha_site_key", _str, "",
            "The site key of the hCaptcha, Turnstile or SmartCaptcha widget (public).", "string"),
    Setting("public.captcha_secret_file", _str, "",
            "File holding the provider's secret key (readable by the service user only).",
            example="/etc/altkraft/captcha_secret"),
    Setting("public.captcha_verify_url", _optional_http_url, "",
            "The provider's verification URL; empty: the provider's own siteverify address. A "
            "provider that does not answer refuses the sign-up.", "string"),
    Setting("public.captcha_allowed_networks", _network_list, [],
            "Private networks (CIDR) the verification URL may be on, e.g. for a proxy; empty: "
            "public addresses only.", "list of strings"),
    Setting("public.check_disposable", _bool, True,
            "Refuse sign-ups from disposable-address domains (the list of the "
            "disposable-email-domains project, shipped with the application).", "boolean"),
    Setting("public.check_mx", _bool, True,
            "Refuse sign-ups whose domain cannot receive email (no mail server in DNS, asked "
            "through deliverability.nameservers); a DNS server that does not answer accepts "
            "the sign-up. Switch it off where those servers cannot resolve public names (an "
            "isolated network): every domain would look like no domain at all.", "boolean"),

    Setting("messages.image_max_width", _positive(_int), 1200,
            "Uploaded images wider than this many pixels are scaled down (aspect kept).", "integer"),
    Setting("messages.upload_max_mb", _positive(_int), 10,
            "Largest image file the media library accepts, in megabytes.", "integer"),
    Setting("messages.data_allowed_hosts", _str_list, [],
            "Hosts external JSON data ({{ data.… }}) may be fetched from: \"api.example.com\" or "
            "\"*.example.com\". Empty: any public host.", "list of strings"),
    Setting("messages.data_allowed_private_networks", _str_list, [],
            "Private, loopback and link-local networks (CIDR) that external data may still come "
            "from, e.g. [\"10.1.2.0/24\"]. Empty: all such addresses are refused.", "list of strings"),
    Setting("messages.data_timeout_seconds", _positive(_float), 10.0,
            "Time limit for fetching one external JSON document.", "number"),
    Setting("messages.data_max_kb", _positive(_int), 1024,
            "Largest external JSON document accepted, in kilobytes.", "integer"),
    Setting("messages.data_concurrency", _positive(_int), 8,
            "Parallel fetches of per-subscriber external data.", "integer"),

    Setting("transactional.strict_categories", _str_list, [],
            "Categories of the transactional API (its `category` field) that are strictly "
            "transactional, such as password resets: sent even to a suppressed address "
            "(unsubscribed, complained, blocked by hand), never to one that hard-bounced.",
            "list of strings"),
    Setting("transactional.token_rate", _positive(_float), 100.0,
            "Requests per second one API token may make to POST /api/v1/transactional, on "
            "average (each web worker process allows its share: this divided by "
            "server.workers); more are answered 429 with Retry-After.", "number"),
    Setting("transactional.token_burst", _positive(_int), 200,
            "Requests one API token may make to POST /api/v1/transactional at once, above its "
            "rate (divided by server.workers like the rate).", "integer"),

    Setting("automation.webhook_allowed_private_networks", _str_list, [],
            "Private, loopback and link-local networks (CIDR) that outgoing webhooks and workflow "
            "HTTP requests may still reach, e.g. [\"10.1.2.0/24\"]. Empty: all such addresses "
            "are refused.", "list of strings"),
    Setting("automation.webhook_timeout_seconds", _positive(_float), 10.0,
            "Time limit for one webhook or workflow HTTP request (connecting and answering).",
            "number"),
    Setting("automation.webhook_disable_after", _positive(_int), 20,
            "A webhook subscription is switched off after this many failed attempts in a row "
            "(administrators get an email).", "integer"),
    Setting("automation.webhook_concurrency", _positive(_int), 4,
            "Webhook requests one worker makes at the same time.", "integer"),
    Setting("automation.segment_check_minutes", _positive(_int), 5,
            "How often the segments that workflows watch (segment_entered / segment_left "
            "triggers, exit segments) are compared with their members at the last look.",
            "integer"),
)

BY_KEY: dict[str, Setting] = {s.key: s for s in SETTINGS}
