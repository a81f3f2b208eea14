# iocp_version_resource(TARGET DESCRIPTION): a VERSIONINFO resource for an executable or DLL,
# from cmake/version.rc.in and the project's version (project(VERSION) in the top
# CMakeLists.txt), compiled by the RC compiler (windres with MinGW: CMAKE_RC_COMPILER in
# cmake/mingw-*.cmake; rc.exe with Visual Studio).
function(iocp_version_resource target description)
  get_target_property(type ${target} TYPE)
  get_target_property(output_name ${target} OUTPUT_NAME)
  if(NOT output_name)
    set(output_name ${target})
  endif()
  set(IOCP_RC_NAME ${output_name})
  set(IOCP_RC_DESCRIPTION "${description}")
  if(type STREQUAL "EXECUTABLE")
    set(IOCP_RC_FILENAME "${output_name}.exe")
    set(IOCP_RC_FILETYPE VFT_APP)
  else()
    set(IOCP_RC_FILENAME "${output_name}.dll")
    set(IOCP_RC_FILETYPE VFT_DLL)
  endif()
  set(rc ${CMAKE_CURRENT_BINARY_DIR}/${target}-version.rc)
  configure_file(${PROJECT_SOURCE_DIR}/cmake/version.rc.in ${rc} @ONLY)
  target_sources(${target} PRIVATE ${rc})
endfunction()
