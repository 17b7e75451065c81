# Run by cpack (CPACK_PRE_BUILD_SCRIPTS) on the staged files, before the packages are built:
# the conffile gets the mode lintian expects, 0644 (postinst then makes it 0640 root:patchdrop).
file(GLOB_RECURSE confs "${CPACK_TEMPORARY_INSTALL_DIRECTORY}/*/etc/patchdrop/patchdrop.conf")
foreach(conf IN LISTS confs)
  file(CHMOD "${conf}" PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ)
endforeach()
