<?php
// Roundcube talks to nginx, which sends each login to its backend:
// nothing in Roundcube knows about backends.
$config['imap_host'] = 'tls://mail.example.com:143';   // or 'localhost:143' on the nginx host
$config['smtp_host'] = 'tls://mail.example.com:587';
$config['smtp_user'] = '%u';
$config['smtp_pass'] = '%p';
