# cmake --install in the GNUInstallDirs layout, the CMake package (find_package(iocp CONFIG)),
# the pkg-config files and the release archive (cpack: iocp-<version>-win64.zip):
#
#   bin/iocp-service.exe, bin/iocp-client.exe   self-contained (the static engine); the
#                                               service's Event Log message table is a
#                                               resource inside iocp-service.exe, which
#                                               `install` registers as EventMessageFile
#   bin/iocp.dll                                with IOCP_BUILD_SHARED
#   include/iocp/*.h                            iocp.h, framing.h, export.h, version.h
#   lib/libiocp.a, lib/libiocp.dll.a            (MSVC: iocp_static.lib, iocp.lib)
#   lib/cmake/iocp/                             iocpConfig.cmake, its version file, targets
#   lib/pkgconfig/iocp.pc, iocp-static.pc
#   share/doc/iocp/                             README.md, LICENSE, docs/*.md, the service's
#                                               README (service.md), examples/echo
include(CMakePackageConfigHelpers)

set(iocp_cmake_dir ${CMAKE_INSTALL_LIBDIR}/cmake/iocp)
set(iocp_libraries iocp)
if(TARGET iocp_shared)
  list(APPEND iocp_libraries iocp_shared)
endif()

install(TARGETS ${iocp_libraries} EXPORT iocpTargets
  RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR}
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
  INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(FILES iocp/include/iocp/iocp.h iocp/include/iocp/framing.h iocp/include/iocp/export.h
              ${IOCP_GENERATED_INCLUDE}/iocp/version.h
        DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/iocp)
install(TARGETS iocp-service iocp-client RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})

install(EXPORT iocpTargets NAMESPACE iocp:: DESTINATION ${iocp_cmake_dir})
configure_package_config_file(cmake/iocpConfig.cmake.in
  ${CMAKE_CURRENT_BINARY_DIR}/iocpConfig.cmake INSTALL_DESTINATION ${iocp_cmake_dir})
# 1.x takes any 1.y: the public API only grows within a major version.
write_basic_package_version_file(${CMAKE_CURRENT_BINARY_DIR}/iocpConfigVersion.cmake
  COMPATIBILITY SameMajorVersion)
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/iocpConfig.cmake
              ${CMAKE_CURRENT_BINARY_DIR}/iocpConfigVersion.cmake
        DESTINATION ${iocp_cmake_dir})

# pkg-config (MSYS2): iocp.pc is the DLL when there is one, iocp-static.pc the static library.
# Relocatable: the prefix is found from the .pc file's own place (pkgconf's ${pcfiledir}).
list(TRANSFORM IOCP_SYSTEM_LIBS PREPEND "-l" OUTPUT_VARIABLE iocp_pc_system)
string(JOIN " " IOCP_PC_SYSTEM_LIBS ${iocp_pc_system})
if(TARGET iocp_shared)
  set(IOCP_PC_CFLAGS "")
  set(IOCP_PC_LIBS "-liocp")
  set(IOCP_PC_LIBS_PRIVATE "") # iocp.dll brings its own imports
  configure_file(cmake/iocp.pc.in ${CMAKE_CURRENT_BINARY_DIR}/pkgconfig/iocp.pc @ONLY)
endif()
set(IOCP_PC_CFLAGS "-DIOCP_STATIC")
set(IOCP_PC_LIBS "-l:libiocp.a ${IOCP_PC_SYSTEM_LIBS}")
set(IOCP_PC_LIBS_PRIVATE "")
configure_file(cmake/iocp.pc.in ${CMAKE_CURRENT_BINARY_DIR}/pkgconfig/iocp-static.pc @ONLY)
if(NOT TARGET iocp_shared)
  configure_file(cmake/iocp.pc.in ${CMAKE_CURRENT_BINARY_DIR}/pkgconfig/iocp.pc @ONLY)
endif()
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/pkgconfig/iocp.pc
              ${CMAKE_CURRENT_BINARY_DIR}/pkgconfig/iocp-static.pc
        DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)

install(FILES README.md LICENSE docs/building.md docs/client.md docs/design.md
              docs/reliability.md docs/wine.md
        DESTINATION ${CMAKE_INSTALL_DOCDIR})
install(FILES service/README.md DESTINATION ${CMAKE_INSTALL_DOCDIR} RENAME service.md)
install(FILES examples/echo/CMakeLists.txt examples/echo/echo_example.c
        DESTINATION ${CMAKE_INSTALL_DOCDIR}/examples/echo)

# The release archive: `cpack` in the build folder (scripts/test.sh does it for the MinGW GCC
# build, and scripts/check-package.sh builds examples/echo against it).
set(CPACK_GENERATOR ZIP)
set(CPACK_PACKAGE_NAME iocp)
set(CPACK_PACKAGE_VENDOR "the iocp-server authors")
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
if(CMAKE_SIZEOF_VOID_P EQUAL 8)
  set(CPACK_PACKAGE_FILE_NAME iocp-${PROJECT_VERSION}-win64)
else()
  set(CPACK_PACKAGE_FILE_NAME iocp-${PROJECT_VERSION}-win32)
endif()
set(CPACK_RESOURCE_FILE_LICENSE ${PROJECT_SOURCE_DIR}/LICENSE)
set(CPACK_INCLUDE_TOPLEVEL_DIRECTORY ON)
set(CPACK_STRIP_FILES ON) # the build's debug information stays in the build tree
set(CPACK_OUTPUT_FILE_PREFIX ${CMAKE_BINARY_DIR}/package)
include(CPack)
