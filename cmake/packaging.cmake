# cpack -G DEB: one package, "mailgrid", with every program, man page,
# systemd unit, example and the LDAP schema, in Debian's paths.
set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME mailgrid)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_CONTACT "mailgrid maintainers <maintainers@mailgrid.invalid>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY
    "Postfix, Cyrus, nginx and webmail as one LDAP-driven mail system")
set(CPACK_PACKAGE_DESCRIPTION
    "Small daemons that plug into interfaces Postfix, Cyrus IMAP and nginx already have:
 ldap_tablemap (tcp_table/socketmap lookups), sasl_ldap_auth (a saslauthd),
 webmail_locator (nginx auth_http), maildir_deliver (Maildir++ delivery with
 quotas, LMTP), mupdate_bridge (a MUPDATE master for Cyrus Murder) and
 mailgrid_policy (Postfix policy service and milter).")
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION mail)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_STRIP_FILES ON)
set(CPACK_DEBIAN_PACKAGE_DEPENDS "adduser")
set(CPACK_DEBIAN_PACKAGE_SUGGESTS "postfix, postfix-ldap, slapd, redis-server, nginx, libnginx-mod-mail, cyrus-imapd")
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
    ${CMAKE_SOURCE_DIR}/deploy/debian/postinst
    ${CMAKE_SOURCE_DIR}/deploy/debian/postrm)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
include(CPack)
