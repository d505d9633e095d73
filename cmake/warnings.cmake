# One warning policy for every target in the suite.
function(mailgrid_warnings target)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Wpedantic -Wshadow
    -Wnon-virtual-dtor -Wold-style-cast -Wcast-align
    -Wformat=2 -Wimplicit-fallthrough)
  if(MAILGRID_WERROR)
    target_compile_options(${target} PRIVATE -Werror)
  endif()
endfunction()
