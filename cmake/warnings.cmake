# Warning flags for every target of the project: the GCC/clang set and its MSVC twin.
option(IOCP_WERROR "Treat warnings as errors" OFF)

function(iocp_warnings target)
  if(MSVC)
    target_compile_options(${target} PRIVATE /W4)
    if(IOCP_WERROR)
      target_compile_options(${target} PRIVATE /WX)
    endif()
  else()
    target_compile_options(${target} PRIVATE -Wall -Wextra -Wpedantic -Wshadow
      $<$<COMPILE_LANGUAGE:C>:-Wstrict-prototypes>)
    if(IOCP_WERROR)
      target_compile_options(${target} PRIVATE -Werror)
    endif()
  endif()
endfunction()
